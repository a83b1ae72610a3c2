import Analyses
import AnnData
import Foundation

/// `RUN/plan.json`: everything a run needs, as data (format documented in docs/plan-json.md).
/// Workers and the reducer read only this and the input file.
public struct Plan: Codable, Sendable, Equatable {
    public static let format = "sctrial-plan.plan"
    public static let currentVersion = 1

    public struct Input: Codable, Sendable, Equatable {
        public var path: String
        public var sizeBytes: Int
        /// Modification time, seconds since 1970, to detect a file changed after planning.
        public var modified: Double
        public var nObs: Int
        public var nVars: Int

        enum CodingKeys: String, CodingKey {
            case path, modified
            case sizeBytes = "size_bytes", nObs = "n_obs", nVars = "n_vars"
        }
    }

    /// The analysis and its settled parameters; `kind` says which member is set.
    public struct Analysis: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case de, did }

        public struct DE: Codable, Sendable, Equatable {
            public var parameters: DEParameters
            /// Whether the values are log1p, settled at plan time (auto-detected or given).
            public var isLog1p: Bool

            enum CodingKeys: String, CodingKey { case parameters, isLog1p = "is_log1p" }
        }

        public var kind: Kind
        public var de: DE?
        public var did: DiDParameters?

        public static func de(_ parameters: DEParameters, isLog1p: Bool) -> Analysis {
            Analysis(kind: .de, de: DE(parameters: parameters, isLog1p: isLog1p))
        }

        public static func did(_ parameters: DiDParameters) -> Analysis {
            Analysis(kind: .did, did: parameters)
        }
    }

    public var format = Plan.format
    public var version = Plan.currentVersion
    public var createdAt: String
    public var input: Input
    public var analysis: Analysis
    /// Threads each worker uses.
    public var threads: Int

    enum CodingKeys: String, CodingKey {
        case format, version, input, analysis, threads
        case createdAt = "created_at"
    }

    public init(input: Input, analysis: Analysis, threads: Int) {
        self.input = input
        self.analysis = analysis
        self.threads = threads
        createdAt = ISO8601DateFormatter().string(from: Date())
    }

    /// Size and modification time of `path`, for `Input`.
    public static func fileStamp(_ path: String) throws -> (size: Int, modified: Double) {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return (size, modified)
    }

    /// Refuses to run against an input that changed since planning.
    public func checkInputUnchanged() throws {
        guard let stamp = try? Plan.fileStamp(input.path) else {
            throw OrchestrationError("\(input.path): the planned input file is gone")
        }
        guard stamp.size == input.sizeBytes, stamp.modified == input.modified else {
            throw OrchestrationError("\(input.path): changed since planning (size or modification time differs); plan the run again")
        }
    }
}

/// The run directory: the single source of truth for one run.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path) }

    public var planURL: URL { url.appendingPathComponent("plan.json") }
    public var resultsURL: URL { url.appendingPathComponent("results.csv") }

    public func create() throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func write(_ plan: Plan) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(plan), to: planURL)
    }

    public func readPlan() throws -> Plan {
        guard FileManager.default.fileExists(atPath: planURL.path) else {
            throw OrchestrationError("\(planURL.path): no plan in this run directory (create one with `sctrial-plan plan`)")
        }
        let plan: Plan
        do {
            plan = try JSONDecoder().decode(Plan.self, from: Data(contentsOf: planURL))
        } catch {
            throw OrchestrationError("\(planURL.path): not a readable plan (\(error))")
        }
        guard plan.format == Plan.format, plan.version == Plan.currentVersion else {
            throw OrchestrationError("\(planURL.path): plan format \(plan.format) version \(plan.version) is not supported (this build reads version \(Plan.currentVersion))")
        }
        return plan
    }
}
