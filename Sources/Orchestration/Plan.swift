import Analyses
import AnnData
import Foundation

/// `RUN/plan.json`: everything a run needs, as data (format documented in docs/plan-json.md).
/// Workers and the reducer read only this, the files it names under RUN/, and the input file.
public struct Plan: Codable, Sendable, Equatable {
    public static let format = "sctrial-plan.plan"
    public static let currentVersion = 2

    public struct Input: Codable, Sendable, Equatable {
        public var path: String
        public var sizeBytes: Int
        /// Modification time, seconds since 1970, to detect a file changed after planning.
        public var modified: Double
        public var nObs: Int
        public var nVars: Int
        /// `InputFingerprint` of the file at planning.
        public var fingerprint: String
        /// The matrices the run reads (part of the fingerprint).
        public var matrices: [String]

        enum CodingKeys: String, CodingKey {
            case path, modified, fingerprint, matrices
            case sizeBytes = "size_bytes", nObs = "n_obs", nVars = "n_vars"
        }
    }

    /// The analysis, its settled parameters and its units; `kind` says which member is set.
    public struct Analysis: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case de, did }

        public struct DE: Codable, Sendable, Equatable {
            public var parameters: DEParameters
            /// Whether the values are log1p, settled at plan time (auto-detected or given).
            public var isLog1p: Bool
            /// Target labels in pdex's order (first appearance), the reference excluded.
            public var targets: [String]
            /// The `reference` column's value.
            public var referenceName: String
            /// Gene names in var order.
            public var genes: [String]
            /// The matrix's minimum when it is negative (e.g. z-scored data): the tests stand, but
            /// fold and percent change are not meaningful, which summary.json repeats. Nil otherwise.
            public var negativeMinimum: Double?

            enum CodingKeys: String, CodingKey {
                case parameters, targets, genes
                case isLog1p = "is_log1p", referenceName = "reference_name", negativeMinimum = "negative_minimum"
            }
        }

        public struct DiD: Codable, Sendable, Equatable {
            public var parameters: DiDParameters
            /// Feature names in result order (after --min-gene-counts).
            public var features: [String]
            /// Cell-type blocks in result order; one null entry for a plain did_table.
            public var celltypes: [String?]
        }

        public var kind: Kind
        public var de: DE?
        public var did: DiD?
    }

    /// Along which units the run is split.
    public enum Axis: String, Codable, Sendable, CaseIterable {
        case features, celltypes, perturbations
    }

    /// How a shard reads the matrix; `plan.txt` prints the description.
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

        public var description: String {
            switch self {
            case .rowSubset: "row subset of the input (only the cells of its units)"
            case .allRows: "every row of the input"
            case .columnRange: "column range of the input (only its genes)"
            case .stagedColumns: "column range of the staged gene-major copy (only its genes)"
            case .none: "no matrix (obs columns only)"
            }
        }
    }

    public struct Shard: Codable, Sendable, Equatable {
        public var index: Int
        /// Units `[start, end)` along the axis.
        public var start: Int
        public var end: Int
        public var estimatedSeconds: Double
        public var estimatedMemoryBytes: Int

        public var units: Range<Int> { start..<end }

        enum CodingKeys: String, CodingKey {
            case index, start, end
            case estimatedSeconds = "estimated_seconds", estimatedMemoryBytes = "estimated_memory_bytes"
        }
    }

    /// Per-worker resources, set at planning, overridable when running.
    public struct Resources: Codable, Sendable, Equatable {
        public var threads: Int
        /// Read budget in GB (the reader's blocks and gathers stay within it).
        public var memoryGB: Double

        enum CodingKeys: String, CodingKey { case threads, memoryGB = "memory_gb" }
    }

    /// Files computed once at planning so that no shard repeats a pass over the whole matrix;
    /// paths relative to the run directory.
    public struct Staged: Codable, Sendable, Equatable {
        /// Gene-major (CSC) copy of the analysed matrix.
        public var matrix: String?
        /// Per-gene totals (little-endian float64), for --min-gene-counts.
        public var geneTotals: String?
        /// Per-cell library sizes (little-endian float64), for log1p-CPM.
        public var librarySizes: String?

        enum CodingKeys: String, CodingKey {
            case matrix
            case geneTotals = "gene_totals", librarySizes = "library_sizes"
        }
    }

    public var format = Plan.format
    public var version = Plan.currentVersion
    /// Short random id: names Slurm jobs and ties markers to this plan.
    public var runID: String
    public var createdAt: String
    public var input: Input
    public var analysis: Analysis
    public var axis: Axis
    public var readPath: ReadPath
    public var shards: [Shard]
    public var resources: Resources
    public var staged: Staged

    enum CodingKeys: String, CodingKey {
        case format, version, input, analysis, axis, shards, resources, staged
        case runID = "run_id", createdAt = "created_at", readPath = "read_path"
    }

    /// Unit names along the axis.
    public var units: [String] {
        switch (axis, analysis.kind) {
        case (.perturbations, _): analysis.de?.targets ?? []
        case (.features, .de): analysis.de?.genes ?? []
        case (.features, .did): analysis.did?.features ?? []
        case (.celltypes, _): analysis.did?.celltypes.map { $0 ?? "" } ?? []
        }
    }

    /// Size and modification time of `path`, for `Input`.
    public static func fileStamp(_ path: String) throws -> (size: Int, modified: Double) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw OrchestrationError("\(path): the planned input file is gone")
        }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return (size, modified)
    }

    /// Refuses to run against an input that changed since planning: size, mtime, then the
    /// fingerprint of its names and shapes.
    public func checkInputUnchanged() throws {
        let stamp = try Plan.fileStamp(input.path)
        guard stamp.size == input.sizeBytes, stamp.modified == input.modified else {
            throw OrchestrationError("\(input.path): changed since planning (size or modification time differs); plan the run again")
        }
        guard try InputFingerprint.compute(path: input.path, matrices: input.matrices) == input.fingerprint else {
            throw OrchestrationError("\(input.path): changed since planning (obs/var names or matrix shape differ); plan the run again")
        }
    }
}
