import AnnData
import Foundation

/// How to split a run, as asked on the command line.
public struct ShardingRequest: Sendable {
    public var axis: ShardAxis?
    /// An exact shard count (capped at the unit count).
    public var shards: Int?
    /// Otherwise: as many shards as the cost model needs to keep each near this many seconds.
    public var targetShardSeconds: Double
    public var threads: Int
    /// Memory per worker; nil: the analysis chooses (DE sizes it to gather a shard's matrix in
    /// one pass, the others take `defaultMemoryGB`).
    public var memoryGB: Double?

    public static let defaultTargetShardSeconds = 300.0
    public static let defaultMemoryGB = 2.0

    public init(axis: ShardAxis? = nil, shards: Int? = nil, targetShardSeconds: Double = defaultTargetShardSeconds,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, memoryGB: Double? = nil) {
        self.axis = axis
        self.shards = shards
        self.targetShardSeconds = targetShardSeconds
        self.threads = threads
        self.memoryGB = memoryGB
    }

    /// Contiguous shards (global order is then concatenation) with costs as equal as the units
    /// allow: cut where the running cost crosses each multiple of total / N.
    public func partition(_ costs: [Double], fixedCost: Double) -> [Range<Int>] {
        let total = costs.reduce(0, +)
        let wanted: Int
        if let shards {
            wanted = shards
        } else {
            // Each shard pays the fixed cost (e.g. reading the reference cells) again.
            let perShard = max(targetShardSeconds - fixedCost, targetShardSeconds / 2)
            wanted = Int((total / perShard).rounded(.up))
        }
        let count = max(1, min(wanted, costs.count))
        var ranges: [Range<Int>] = []
        var start = 0
        var running = 0.0
        for (index, cost) in costs.enumerated() {
            running += cost
            let remainingShards = count - ranges.count - 1
            let remainingUnits = costs.count - index - 1
            let boundary = total * Double(ranges.count + 1) / Double(count)
            if remainingShards > 0 && (running >= boundary || remainingUnits == remainingShards) {
                ranges.append(start..<(index + 1))
                start = index + 1
            }
        }
        ranges.append(start..<costs.count)
        return ranges
    }
}

/// How the shards of the plan a run directory held before measured against their estimates;
/// planning the same analysis there again scales its cost model by `ratio`.
public struct CostCorrection: Sendable {
    public var ratio: Double
    public var text: String

    public init(ratio: Double, text: String) {
        self.ratio = ratio
        self.text = text
    }
}

/// What planning computes once into RUN/staged so that no shard repeats it. Orchestration
/// writes them (atomically, only for a real plan, never a dry run).
public protocol StagingArea: AnyObject {
    /// Writes the gene-major copy of `matrix` and records it for the shards; returns its path
    /// relative to the run directory.
    @discardableResult
    func stageGeneMajorCopy(of matrix: MatrixReader) throws -> String
    /// Per-gene totals for --min-gene-counts.
    func stageGeneTotals(_ values: [Double]) throws
    /// Per-cell library sizes for log1p-CPM.
    func stageLibrarySizes(_ values: [Double]) throws
    /// A file of the analysis' own at `relative` (e.g. `staged/ranking.rnk`).
    func stageFile(_ relative: String, contents: Data) throws
}

/// How the run's input file is recognised again by workers.
public enum InputIdentity: String, Codable, Sendable {
    /// An h5ad: its names, shapes and the listed matrices.
    case h5ad
    /// Any other file: the sha256 of its bytes.
    case contents
}

/// An analysis' plan before Orchestration turns it into plan.json: its settled value, the axis,
/// the shards' unit ranges with their estimated costs and memory, the read path, and what to
/// stage.
public struct AnalysisLayout {
    public var analysis: any ShardedAnalysis
    public var identity: InputIdentity
    /// Matrices the run reads (part of an h5ad input's fingerprint).
    public var matrices: [String]
    public var nObs: Int
    public var nVars: Int
    public var axis: ShardAxis
    public var readPath: ReadPath
    public var ranges: [Range<Int>]
    /// Seconds per unit, and paid again by every shard.
    public var unitCosts: [Double]
    public var fixedCost: Double
    /// Estimated bytes per shard, in `ranges` order.
    public var memoryBytes: [Int]
    public var memoryGB: Double
    /// One line: the analysis and its input, for plan.txt.
    public var description: String
    /// The cost model in words, for plan.txt.
    public var model: String
    /// Writes what the shards share (not called for a dry run).
    public var stage: (any StagingArea) throws -> Void
    /// A run this one needs reduced before its shards start (GSEA's DiD over every gene).
    public var prerequisite: Prerequisite?
    /// What the user should know about the results before running (printed on stderr).
    public var warnings: [String] = []

    public init(analysis: any ShardedAnalysis, identity: InputIdentity = .h5ad, matrices: [String], nObs: Int, nVars: Int,
                axis: ShardAxis, readPath: ReadPath, ranges: [Range<Int>], unitCosts: [Double], fixedCost: Double,
                memoryBytes: [Int], memoryGB: Double, description: String, model: String,
                stage: @escaping (any StagingArea) throws -> Void = { _ in }) {
        self.analysis = analysis
        self.identity = identity
        self.matrices = matrices
        self.nObs = nObs
        self.nVars = nVars
        self.axis = axis
        self.readPath = readPath
        self.ranges = ranges
        self.unitCosts = unitCosts
        self.fixedCost = fixedCost
        self.memoryBytes = memoryBytes
        self.memoryGB = memoryGB
        self.description = description
        self.model = model
        self.stage = stage
    }
}

/// A run planned inside another's directory that must be complete (reduced) before the outer
/// run's shards start: executors run or submit it first, and the outer shards read its results.
public final class Prerequisite: Sendable {
    /// Its run directory, relative to the outer one.
    public let directory: String
    public nonisolated(unsafe) let layout: AnalysisLayout

    public init(directory: String, layout: AnalysisLayout) {
        self.directory = directory
        self.layout = layout
    }
}

/// Plans one analysis on an input: what the command line builds from its options and hands
/// to Orchestration's planner.
public protocol AnalysisPlanner: Sendable {
    /// `ShardedAnalysis.name` of what it plans (to find the previous run's measurements).
    var analysisName: String { get }

    /// Checks the design against the input (before any pass over the matrix), then lays out the
    /// units, their costs scaled by `correction`, the shards and the read path. Reader errors may
    /// be thrown as they are: the planner turns them into analysis errors.
    func layout(input path: String, request: ShardingRequest, correction: CostCorrection?,
                progress: (@Sendable (String) -> Void)?) throws -> AnalysisLayout
}

/// Cost coefficients, measured with bench/ on this project's reference machine (2 cores);
/// reading is measured on each input at planning.
public enum CostModel {
    /// DE, one thread: seconds per target × gene test, and per stored value compared (60K ×
    /// 2,000 × 200 and 300K × 8,000 × 2,000 bench files: about 1 µs per test dominates, the
    /// shard's write of its rows included).
    static let deSecondsPerTest = 1.2e-6
    static let deSecondsPerComparedValue = 2e-9
    /// DiD: seconds per pseudobulk unit per feature for the batched fit.
    static let didSecondsPerUnitFeature = 2e-7

    /// Rows per block when judging how much of a file a row subset touches (the reader merges
    /// nearby rows into one read, and HDF5 reads whole chunks).
    static let rowBlock = 2048
    /// Above this coverage a row-subset shard costs about a full pass.
    static let maximumRowSubsetCoverage = 0.5

    /// Fraction of `rowBlock`-row blocks holding at least one of `rows`.
    static func rowCoverage(_ rows: [Int], nRows: Int) -> Double {
        let blocks = max(1, (nRows + rowBlock - 1) / rowBlock)
        var touched = 0
        var last = -1
        for row in rows where row / rowBlock != last {
            last = row / rowBlock
            touched += 1
        }
        return Double(touched) / Double(blocks)
    }

    /// Values read to measure the read speed: enough to span a few HDF5 chunks.
    static let sampleValues = 5e5

    /// Stored values per second read from the first rows (CSR, dense) or columns (CSC): a quick,
    /// representative sample of the file's storage and compression.
    static func measureReadRate(_ matrix: MatrixReader) throws -> Double {
        let info = matrix.info
        let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
        let clock = ContinuousClock.now
        var values = 0
        if info.format == .csc {
            let width = max(1, min(info.nCols, Int(Self.sampleValues / max(1, density * Double(info.nRows)))))
            var blocks = try matrix.blocks(columns: 0..<width)
            while let slab = try blocks.next() { values += slab.storedCount }
        } else {
            let height = max(1, min(info.nRows, Int(Self.sampleValues / max(1, density * Double(info.nCols)))))
            var blocks = try matrix.blocks(rows: Array(0..<height))
            while let slab = try blocks.next() { values += slab.storedCount }
        }
        return Double(max(values, 1)) / max(1e-4, seconds(since: clock))
    }

    public static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }
}

/// A float64 vector computed once at planning (`RUN/staged/*.f64`, little-endian).
public enum StagedVector {
    public static func encode(_ values: [Double]) -> Data {
        var encoder = BinaryEncoder()
        encoder.bytes.reserveCapacity(values.count * 8)
        for value in values { encoder.append(value) }
        return Data(encoder.bytes)
    }

    public static func read(_ path: String) throws -> [Double] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalysisError("\(path): staged file missing or unreadable; plan the run again")
        }
        guard data.count % 8 == 0 else { throw AnalysisError("\(path): truncated staged file; plan the run again") }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }
}
