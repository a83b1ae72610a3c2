import Analyses
import AnnData
import Foundation

/// A plan and its human summary (`plan.txt`).
public struct PlannedRun: Sendable {
    public var plan: Plan
    public var text: String
    /// What the user should know about the results before running (printed on stderr).
    public var warnings: [String] = []
}

/// Turns an analysis' layout into a run directory: plan.json with the input's fingerprint and
/// the shards, the files staged once for the shards, and plan.txt. Knows analyses only through
/// `AnalysisPlanner`.
public enum Planner {
    /// Progress lines (staging, passes) go here; nil keeps quiet.
    public typealias Progress = @Sendable (String) -> Void

    public static func plan(_ planner: some AnalysisPlanner, input path: String, request: ShardingRequest, run: RunDirectory,
                            dryRun: Bool = false, progress: Progress? = nil) throws -> PlannedRun {
        let correction = measuredCorrection(run, analysis: planner.analysisName)
        // Reader errors, from the layout or its staging, are the analysis' input errors.
        do {
            let layout = try planner.layout(input: path, request: request, correction: correction, progress: progress)
            let (plan, text) = try write(layout, input: path, request: request, run: run, dryRun: dryRun, progress: progress)
            return PlannedRun(plan: plan, text: text, warnings: layout.warnings)
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        }
    }

    /// Writes the run directory of `layout` (and first, inside it, its prerequisite's) unless
    /// this is a dry run; returns the plan and plan.txt's text.
    static func write(_ layout: AnalysisLayout, input path: String, request: ShardingRequest, run: RunDirectory, dryRun: Bool,
                      progress: Progress?) throws -> (Plan, String) {
        var plan = try makePlan(path: path, layout: layout, request: request)
        if !dryRun {
            try run.clearPreviousRun()
            try run.create()
        }
        var prerequisiteText = ""
        if let prerequisite = layout.prerequisite {
            let inner = RunDirectory(run.resolve(prerequisite.directory).path)
            let (innerPlan, text) = try write(prerequisite.layout, input: path, request: request, run: inner, dryRun: dryRun,
                                              progress: progress)
            plan.prerequisite = prerequisite.directory
            prerequisiteText = "\nprerequisite, run first: \(inner.path) (\(innerPlan.analysis.name), \(innerPlan.shards.count) shard\(innerPlan.shards.count == 1 ? "" : "s"))\n" + text
        }
        if !dryRun {
            let staging = RunStaging(run: run, progress: progress)
            try layout.stage(staging)
            plan.staged = staging.staged
            try run.write(plan)
        }
        let text = summary(plan, description: layout.description, model: layout.model) + prerequisiteText
        if !dryRun { try AtomicFile.write(Data(text.utf8), to: run.planTextURL) }
        return (plan, text)
    }

    /// How the shards of the plan this directory held before measured against their estimates
    /// (their done markers' seconds): planning the same analysis again there scales the cost
    /// model by it, so estimates and shard counts learn from real runs on this machine.
    static func measuredCorrection(_ run: RunDirectory, analysis: String) -> CostCorrection? {
        guard let previous = try? run.readPlan(), previous.analysis.name == analysis else { return nil }
        let measured = previous.shards.compactMap { shard -> (Double, Double)? in
            guard ShardWorker.isDone(previous, run: run, shard: shard.index),
                  let marker = ShardMarker.read(run.markerURL(shard.index)) else { return nil }
            return (marker.seconds, shard.estimatedSeconds)
        }
        let estimated = measured.reduce(0) { $0 + $1.1 }
        guard !measured.isEmpty, estimated > 0 else { return nil }
        let ratio = min(20, max(0.05, measured.reduce(0) { $0 + $1.0 } / estimated))
        return CostCorrection(ratio: ratio, text: String(format: "; corrected ×%.2f by %d shards measured in this directory's previous run", ratio, measured.count))
    }

    static func makePlan(path: String, layout: AnalysisLayout, request: ShardingRequest) throws -> Plan {
        let stamp = try Plan.fileStamp(path)
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let fingerprint = try InputFingerprint.compute(path: path, identity: layout.identity, matrices: layout.matrices)
        let shards = layout.ranges.enumerated().map { index, range in
            Plan.Shard(index: index, start: range.lowerBound, end: range.upperBound,
                       estimatedSeconds: layout.fixedCost + layout.unitCosts[range].reduce(0, +),
                       estimatedMemoryBytes: layout.memoryBytes[index])
        }
        return Plan(runID: String(format: "%08x", UInt32.random(in: 0...UInt32.max)),
                    createdAt: Timestamp.now(),
                    input: .init(path: absolute, sizeBytes: stamp.size, modified: stamp.modified, nObs: layout.nObs, nVars: layout.nVars,
                                 fingerprint: fingerprint, matrices: Array(Set(layout.matrices)).sorted(),
                                 identity: layout.identity == .h5ad ? nil : layout.identity),
                    analysis: Plan.Analysis(layout.analysis), axis: layout.axis, readPath: layout.readPath, shards: shards,
                    resources: .init(threads: request.threads, memoryGB: layout.memoryGB),
                    staged: .init())
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double { CostModel.seconds(since: start) }

    /// `plan.txt`: what a person checks before spending cluster hours.
    static func summary(_ plan: Plan, description: String, model: String) -> String {
        let units = plan.units
        var text = "run \(plan.runID): \(description)\n"
        text += "axis: \(plan.axis.rawValue), \(units.count) units; \(plan.shards.count) shard\(plan.shards.count == 1 ? "" : "s")\n"
        text += "read path: \(plan.readPath.description)\n"
        if let staged = plan.staged.matrix { text += "staged: gene-major copy \(staged), made once at planning\n" }
        text += "cost model: \(model)\n"
        text += "per worker: \(plan.resources.threads) threads, \(String(format: "%.1f", plan.resources.memoryGB)) GB\n\n"
        text += "shard  units            first … last                           est. s  est. memory\n"
        for shard in plan.shards {
            let span = "\(shard.start)-\(shard.end - 1) (\(shard.units.count))"
            let names = "\(units[shard.start].prefix(16)) … \(units[shard.end - 1].prefix(16))"
            text += String(format: "%05d  %@ %@ %7.1f  %@\n", shard.index, span.padding(toLength: 16, withPad: " ", startingAt: 0),
                           names.padding(toLength: 38, withPad: " ", startingAt: 0), shard.estimatedSeconds,
                           bytes(shard.estimatedMemoryBytes))
        }
        let total = plan.shards.reduce(0) { $0 + $1.estimatedSeconds }
        text += String(format: "\nestimated work: %.1f s in all, %.1f s for the largest shard\n", total,
                       plan.shards.map(\.estimatedSeconds).max() ?? 0)
        return text
    }

    static func bytes(_ count: Int) -> String {
        count >= 1 << 30 ? String(format: "%.1f GB", Double(count) / 1e9) : String(format: "%.0f MB", Double(count) / 1e6)
    }
}

/// Writes what a layout stages into RUN/staged and records it for plan.json.
final class RunStaging: StagingArea {
    let run: RunDirectory
    let progress: Planner.Progress?
    var staged = Plan.Staged()

    init(run: RunDirectory, progress: Planner.Progress?) {
        self.run = run
        self.progress = progress
    }

    /// `RUN/staged/matrix.h5`, the gene-major copy feature shards read their columns from.
    func stageGeneMajorCopy(of matrix: MatrixReader) throws -> String {
        let relative = "staged/matrix.h5"
        try FileManager.default.createDirectory(at: run.stagedURL, withIntermediateDirectories: true)
        progress?("staging a gene-major copy of \(matrix.info.path) (\(matrix.info.nnz) stored values) at \(run.resolve(relative).path)")
        let clock = ContinuousClock.now
        var reported = 0
        let progress = self.progress
        let summary = try GeneMajorCopy.write(matrix, to: run.resolve(relative).path) { fraction in
            let percent = Int(fraction * 100)
            if percent >= reported + 10 { reported = percent - percent % 10; progress?("  staged \(reported)%") }
        }
        progress?(String(format: "staged %.1f MB in %.1f s", Double(summary.bytes) / 1e6, Planner.seconds(since: clock)))
        staged.matrix = relative
        return relative
    }

    func stageGeneTotals(_ values: [Double]) throws {
        staged.geneTotals = "staged/gene_totals.f64"
        try stageFile(staged.geneTotals!, contents: StagedVector.encode(values))
    }

    func stageLibrarySizes(_ values: [Double]) throws {
        staged.librarySizes = "staged/library_sizes.f64"
        try stageFile(staged.librarySizes!, contents: StagedVector.encode(values))
    }

    func stageFile(_ relative: String, contents: Data) throws {
        let url = run.resolve(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(contents, to: url)
    }
}
