import Analyses
import AnnData
import Foundation

/// `RUN/plan.json`: everything a run needs, as data (format documented in docs/plan-json.md).
/// Workers and the reducer read only this, the files it names under RUN/, and the input file.
public struct Plan: Codable, Sendable {
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
        /// How the fingerprint recognises the file (absent in plans of h5ad inputs).
        public var identity: InputIdentity?

        enum CodingKeys: String, CodingKey {
            case path, modified, fingerprint, matrices, identity
            case sizeBytes = "size_bytes", nObs = "n_obs", nVars = "n_vars"
        }
    }

    /// The analysis as planned, stored as `{"kind": NAME, NAME: {...}}` and decoded through
    /// `AnalysisRegistry`, so that a plan names its analysis and nothing here lists them.
    public struct Analysis: Codable, Sendable {
        public let value: any ShardedAnalysis

        public init(_ value: any ShardedAnalysis) { self.value = value }

        public var name: String { type(of: value).name }

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            let name = try container.decode(String.self, forKey: Key(stringValue: "kind"))
            guard let type = AnalysisRegistry.analysis(named: name) else {
                throw DecodingError.dataCorruptedError(forKey: Key(stringValue: "kind"), in: container,
                                                       debugDescription: "unknown analysis '\(name)'")
            }
            value = try type.init(from: container.superDecoder(forKey: Key(stringValue: name)))
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(name, forKey: Key(stringValue: "kind"))
            try value.encode(to: container.superEncoder(forKey: Key(stringValue: name)))
        }
    }

    public typealias Axis = ShardAxis
    public typealias ReadPath = Analyses.ReadPath

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
    /// A run directory, relative to this one, that must be reduced before this run's shards
    /// start (absent for most plans).
    public var prerequisite: String?

    enum CodingKeys: String, CodingKey {
        case format, version, input, analysis, axis, shards, resources, staged, prerequisite
        case runID = "run_id", createdAt = "created_at", readPath = "read_path"
    }

    /// Unit names along the axis.
    public var units: [String] { analysis.value.units(along: axis) }

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
        guard try InputFingerprint.compute(path: input.path, identity: input.identity ?? .h5ad, matrices: input.matrices) == input.fingerprint else {
            throw OrchestrationError("\(input.path): changed since planning (obs/var names or matrix shape differ); plan the run again")
        }
    }
}
