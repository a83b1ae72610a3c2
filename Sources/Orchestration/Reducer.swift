import Analyses
import Dispatch
import Foundation
import Synchronization
import Stats

/// `summary.json`, written with the results.
public struct RunSummary: Codable, Sendable, Equatable {
    public struct ShardTiming: Codable, Sendable, Equatable {
        public var shard: Int
        public var rows: Int
        public var seconds: Double
        public var peakRSSBytes: Int
        public var readBytes: Int

        enum CodingKeys: String, CodingKey { case shard, rows, seconds, peakRSSBytes = "peak_rss_bytes", readBytes = "read_bytes" }
    }

    public var format = "sctrial-plan.summary"
    public var version = 1
    public var runID: String
    public var results: String
    public var rows: Int
    /// The FDR column counted.
    public var fdrColumn: String
    public var discoveriesAt005: Int
    public var discoveriesAt01: Int
    /// Shards missing from a partial reduce (empty when complete).
    public var missingShards: [Int]
    public var partial: Bool
    public var shards: [ShardTiming]
    /// DE only: false when the matrix had negative values (scaled data), so the fold_change and
    /// percent_change columns mean nothing; `warnings` says why.
    public var foldChangeMeaningful: Bool?
    /// What a reader of the results should know (absent when nothing).
    public var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case format, version, results, rows, partial, shards, warnings
        case foldChangeMeaningful = "fold_change_meaningful"
        case runID = "run_id", fdrColumn = "fdr_column", discoveriesAt005 = "discoveries_fdr_0.05"
        case discoveriesAt01 = "discoveries_fdr_0.1", missingShards = "missing_shards"
    }
}

/// Checks every shard's marker against the plan, concatenates the parts in global unit order,
/// recomputes FDR over the whole table as the reference does, and writes the results and
/// summary atomically.
public enum Reducer {
    /// `plan`: the run's plan when the caller has read it already; `computed`: parts this
    /// process has just written, reduced from memory (see `ComputedParts`).
    public static func reduce(_ run: RunDirectory, plan: Plan? = nil, allowPartial: Bool = false,
                              computed: ComputedParts? = nil) throws -> RunSummary {
        let plan = try plan ?? run.readPlan()
        var missing: [Int] = []
        var timings: [RunSummary.ShardTiming] = []
        var parts: [ReduceInput.Part] = []
        for shard in plan.shards.indices {
            guard FileManager.default.fileExists(atPath: run.markerURL(shard).path) else { missing.append(shard); continue }
            let (marker, kept) = try verifiedMarker(plan, run: run, shard: shard, computed: computed)
            parts.append(.init(shard: shard, units: plan.shards[shard].units, file: run.partURL(shard), kept: kept))
            timings.append(.init(shard: shard, rows: marker.rows, seconds: marker.seconds, peakRSSBytes: marker.peakRSSBytes,
                                 readBytes: marker.readBytes))
        }
        if !missing.isEmpty && !allowPartial {
            throw OrchestrationError("\(run.path): \(missing.count) of \(plan.shards.count) shards not done (\(listed(missing))); run them (`sctrial-plan run \(run.path)`) or reduce with --allow-partial")
        }
        let output = missing.isEmpty ? run.resultsURL : run.partialResultsURL
        let input = ReduceInput(axis: plan.axis, runDirectory: run.url, shardCount: plan.shards.count, parts: parts)
        let table = try reduce(plan.analysis.value, input, to: output)
        var summary = RunSummary(runID: plan.runID, results: output.lastPathComponent, rows: table.rows, fdrColumn: table.fdrColumn,
                                 discoveriesAt005: table.discoveriesAt005, discoveriesAt01: table.discoveriesAt01,
                                 missingShards: [], partial: false, shards: [])
        summary.missingShards = missing
        summary.partial = !missing.isEmpty
        summary.shards = timings
        summary.foldChangeMeaningful = table.foldChangeMeaningful
        summary.warnings = table.warnings
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(summary), to: run.summaryURL)
        return summary
    }

    /// Whether `run` holds a complete reduce of `plan` (its summary names the plan and no shard
    /// is missing).
    public static func isReduced(_ run: RunDirectory, plan: Plan) -> Bool {
        guard let data = try? Data(contentsOf: run.summaryURL),
              let summary = try? JSONDecoder().decode(RunSummary.self, from: data) else { return false }
        return summary.runID == plan.runID && !summary.partial && FileManager.default.fileExists(atPath: run.resultsURL.path)
    }

    /// The marker of a shard whose part is exactly what the worker wrote for this plan, and what
    /// this process kept of the part when it computed it (see `ComputedParts`).
    static func verifiedMarker(_ plan: Plan, run: RunDirectory, shard: Int,
                               computed: ComputedParts?) throws -> (ShardMarker, (any Sendable)?) {
        let name = "shard \(shard) (\(run.partURL(shard).path))"
        guard let marker = ShardMarker.read(run.markerURL(shard)) else {
            throw OrchestrationError("\(name): unreadable done marker \(run.markerURL(shard).path); delete it and rerun the shard")
        }
        guard marker.runID == plan.runID, marker.shard == shard else {
            throw OrchestrationError("\(name): done marker belongs to another plan; delete it and rerun the shard")
        }
        guard FileManager.default.fileExists(atPath: run.partURL(shard).path) else {
            throw OrchestrationError("\(name): marked done but the part is missing; delete \(run.markerURL(shard).lastPathComponent) and rerun the shard")
        }
        // A part this process hashed as it wrote it needs no second reading.
        let kept = computed?.kept(shard: shard, marker: marker)
        guard try kept != nil || SHA256.file(run.partURL(shard).path) == marker.sha256 else {
            throw OrchestrationError("\(name): part is corrupted (sha256 differs from its done marker); delete \(run.markerURL(shard).lastPathComponent) and rerun the shard")
        }
        return (marker, kept)
    }

    static func listed(_ shards: [Int]) -> String {
        let shown = shards.prefix(10).map(String.init).joined(separator: ", ")
        return "shard\(shards.count == 1 ? "" : "s") " + shown + (shards.count > 10 ? ", …" : "")
    }

    /// Streams the analysis' table into `output` (opened as a concrete analysis type).
    static func reduce<A: ShardedAnalysis>(_ analysis: A, _ input: ReduceInput, to output: URL) throws -> TableSummary {
        var table: TableSummary?
        try AtomicFile.stream(to: output) { table = try analysis.reduce(input, into: &$0) }
        return table!
    }
}
