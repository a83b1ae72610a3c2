import AnnData
import Foundation

/// Along which units a run is split.
public enum ShardAxis: String, Codable, Sendable, CaseIterable {
    case features, celltypes, perturbations, permutations
}

/// How a shard reads its input; `plan.txt` prints the description.
public enum ReadPath: String, Codable, Sendable {
    /// Only its cells: a row subset of CSR storage.
    case rowSubset = "row-subset"
    /// Every row (one shard, or a one-vs-rest comparison).
    case allRows = "all-rows"
    /// Only its genes: a column range of CSC or dense storage.
    case columnRange = "column-range"
    /// Only its genes, from the gene-major copy staged once at planning.
    case stagedColumns = "staged-columns"
    /// No matrix (obs columns only).
    case none
    /// No matrix: a ranking and gene sets stored in the run directory.
    case ranking

    public var description: String {
        switch self {
        case .rowSubset: "row subset of the input (only the cells of its units)"
        case .allRows: "every row of the input"
        case .columnRange: "column range of the input (only its genes)"
        case .stagedColumns: "column range of the staged gene-major copy (only its genes)"
        case .none: "no matrix (obs columns only)"
        case .ranking: "no matrix (the ranking and gene sets stored in the run directory)"
        }
    }
}

/// Where bytes go: a part or a results table being written (Orchestration's atomic writer).
/// Analyses stream into it and never see files or renames.
public protocol ByteSink {
    mutating func append(bytes: [UInt8]) throws
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension ByteSink {
    public mutating func append(_ text: String) throws { try append(bytes: Array(text.utf8)) }
}

/// Files computed once at planning that shards share, as absolute paths.
public struct StagedFiles: Sendable {
    /// Gene-major (CSC) copy of the analysed matrix.
    public var matrix: String?
    /// Per-gene totals (little-endian float64), for --min-gene-counts.
    public var geneTotals: String?
    /// Per-cell library sizes (little-endian float64), for log1p-CPM.
    public var librarySizes: String?

    public init(matrix: String? = nil, geneTotals: String? = nil, librarySizes: String? = nil) {
        self.matrix = matrix
        self.geneTotals = geneTotals
        self.librarySizes = librarySizes
    }
}

/// Everything one shard's computation may use: the input, its units, what planning staged,
/// and its resources.
public struct ShardInput: Sendable {
    public var inputPath: String
    /// The run directory (an analysis may have stored files of its own there at planning).
    public var runDirectory: URL
    /// `plan.json`, for messages about the plan itself.
    public var planPath: String
    public var index: Int
    public var shardCount: Int
    public var units: Range<Int>
    public var axis: ShardAxis
    public var staged: StagedFiles
    public var threads: Int
    /// Read blocks stay within this.
    public var budget: ReadBudget
    /// A gene-major gather of the shard's cells stays within this many bytes.
    public var gatherBudget: Int

    public init(inputPath: String, runDirectory: URL, planPath: String, index: Int, shardCount: Int, units: Range<Int>,
                axis: ShardAxis, staged: StagedFiles, threads: Int, budget: ReadBudget, gatherBudget: Int) {
        self.inputPath = inputPath
        self.runDirectory = runDirectory
        self.planPath = planPath
        self.index = index
        self.shardCount = shardCount
        self.units = units
        self.axis = axis
        self.staged = staged
        self.threads = threads
        self.budget = budget
        self.gatherBudget = gatherBudget
    }
}

/// The shards a reduce concatenates, in unit order.
public struct ReduceInput: Sendable {
    public struct Part: Sendable {
        public var shard: Int
        public var units: Range<Int>
        /// The part file, checked against its marker.
        public var file: URL
        /// What this process kept when it wrote the part (`ShardedAnalysis.writePart`): read
        /// instead of the file.
        public var kept: (any Sendable)?

        public init(shard: Int, units: Range<Int>, file: URL, kept: (any Sendable)?) {
            self.shard = shard
            self.units = units
            self.file = file
            self.kept = kept
        }
    }

    public var axis: ShardAxis
    public var runDirectory: URL
    /// Shards in the plan (some may be missing from `parts` in a partial reduce).
    public var shardCount: Int
    public var parts: [Part]

    public init(axis: ShardAxis, runDirectory: URL, shardCount: Int, parts: [Part]) {
        self.axis = axis
        self.runDirectory = runDirectory
        self.shardCount = shardCount
        self.parts = parts
    }
}

/// What a reduce tells `summary.json`.
public struct TableSummary: Sendable {
    public var rows: Int
    /// The FDR column counted.
    public var fdrColumn: String
    public var discoveriesAt005: Int
    public var discoveriesAt01: Int
    /// DE: false when the matrix had negative values (scaled data), so fold and percent change
    /// mean nothing; nil for other analyses.
    public var foldChangeMeaningful: Bool?
    /// What a reader of the results should know (nil when nothing).
    public var warnings: [String]?

    public init(rows: Int, fdrColumn: String, fdr: [Double]) {
        self.rows = rows
        self.fdrColumn = fdrColumn
        discoveriesAt005 = fdr.filter { $0 < 0.05 }.count
        discoveriesAt01 = fdr.filter { $0 < 0.1 }.count
    }
}

/// An analysis as planned: its settled parameters and units (stored in plan.json under its
/// name), how one shard is computed into a part, and how parts are reduced into the table.
/// Orchestration knows analyses only through this protocol and `AnalysisPlanner`, and finds
/// them by name in `AnalysisRegistry`: a new analysis is new files under Analyses.
public protocol ShardedAnalysis: Codable, Sendable {
    /// One shard's rows, as computed.
    associatedtype ShardResult: Sendable

    /// The analysis' name in plan.json (`analysis.kind`) and on the command line.
    static var name: String { get }

    /// Unit names along `axis`, in global order.
    func units(along axis: ShardAxis) -> [String]

    /// Computes one shard, reading only what it needs.
    func computeShard(_ input: ShardInput) throws -> ShardResult

    func rowCount(_ result: ShardResult) -> Int

    /// Streams the shard's part. With `keep`, returns what a reduce in this same process may
    /// take instead of reading the part back (nil: nothing worth keeping).
    func writePart<Sink: ByteSink>(_ result: ShardResult, input: ShardInput, keep: Bool, into sink: inout Sink) throws -> (any Sendable)?

    /// Concatenates the parts in unit order and streams the results table (FDR recomputed over
    /// the whole table, so it is the same whatever the shard count).
    func reduce<Sink: ByteSink>(_ input: ReduceInput, into table: inout Sink) throws -> TableSummary
}

/// Every analysis a plan can name.
public enum AnalysisRegistry {
    public static let analyses: [any ShardedAnalysis.Type] = [PlannedDE.self, PlannedDiD.self, PlannedGSEA.self]

    public static func analysis(named name: String) -> (any ShardedAnalysis.Type)? {
        analyses.first { $0.name == name }
    }
}
