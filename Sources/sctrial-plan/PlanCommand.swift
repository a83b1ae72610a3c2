import Analyses
import ArgumentParser
import Foundation
import Orchestration

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan an analysis of an .h5ad file into a run directory.",
        discussion: """
            Validates the design against the file, splits the units (features, cell types or \
            perturbations) into shards balanced by a cost model, and writes RUN/plan.json, \
            RUN/plan.txt (shards, units, read path, estimated seconds and memory) and whatever is \
            computed once for all shards (a gene-major copy of a CSR matrix for feature shards). \
            Then `sctrial-plan run RUN` runs the shards locally, or `sctrial-plan submit RUN` on Slurm.
            """,
        subcommands: [PlanDE.self, PlanDiD.self, PlanGSEA.self])
}

struct PlanDE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "de",
        abstract: "Perturbation-vs-control differential expression (pdex 0.1.28 semantics).",
        discussion: """
            Each perturbation (a label of --groupby-key) is compared with the reference cells, gene \
            by gene: Wilcoxon rank-sum (Mann-Whitney U; exact when a group has ≤ 8 cells and no \
            ties), Anderson-Darling k-sample, or Student t-test. results.csv has pdex's columns \
            target, reference, feature, target_mean, reference_mean, percent_change, fold_change, \
            p_value, statistic, fdr (Benjamini-Hochberg over all rows), targets in order of first \
            appearance and genes in var order. --reference rest compares each group with all \
            other cells (one-vs-rest).

            Give expression (counts or normalised); log1p data is detected as pdex does (any \
            value with a fractional part above 0.001) unless --is-log1p says otherwise. Scaled \
            data with negative values (z-scored, as sc.pp.scale leaves X) is tested as pdex \
            does, with a warning (stderr and summary.json) that fold_change and percent_change \
            mean nothing for it; --strict refuses it instead.
            """)

    @Argument(help: "The .h5ad file.")
    var input: String

    @Option(help: "Run directory to create.")
    var out: String

    @Option(help: "obs column holding the perturbation labels.")
    var groupbyKey = "target_gene"

    @Option(help: "Reference label, or 'rest' for one-vs-rest.")
    var reference = "non-targeting"

    @Option(help: "Targets to test: a,b,c or @file (one per line). Default: all.")
    var groups: String?

    @Option(help: "wilcoxon, anderson or t-test.")
    var metric: DEParameters.Metric = .wilcoxon

    @Flag(help: "Wilcoxon without continuity correction (pdex tie_correct=False; the tie variance is always used).")
    var noTieCorrect = false

    @Option(help: "auto, true or false: whether the values are log1p.")
    var isLog1p: DEParameters.Log1p = .auto

    @Flag(help: "For log1p data, average expm1(x) instead of taking expm1 of the mean.")
    var noExpPostAgg = false

    @Option(help: "Clip fold changes with a zero mean to this value (and its inverse), or 'none'.")
    var clipValue = "20"

    @Option(help: "Matrix to test: a layer name (default X).")
    var layer: String?

    @Flag(help: "Refuse a matrix with negative values (scaled data) instead of warning that its fold and percent changes are not meaningful.")
    var strict = false

    @OptionGroup(title: "Sharding and resources")
    var sharding: ShardingOptions

    func validate() throws {
        if clipValue != "none" {
            guard let value = Double(clipValue), value.isFinite, value > 0 else {
                throw ValidationError("--clip-value must be a positive number or 'none', got '\(clipValue)'")
            }
        }
    }

    func run() throws {
        var parameters = DEParameters()
        parameters.groupbyKey = groupbyKey
        parameters.reference = .init(reference)
        parameters.groups = try groups.map { try ListArgument.parse($0, option: "--groups") }
        parameters.metric = metric
        parameters.continuityCorrection = !noTieCorrect
        parameters.isLog1p = isLog1p
        parameters.expPostAggregation = !noExpPostAgg
        parameters.clipValue = clipValue == "none" ? nil : Double(clipValue)
        parameters.layer = layer
        try probeInputFile(input)
        let planned = try reportingFailure {
            try Planner.plan(DEPlanner(parameters: parameters, strict: strict), input: input, request: sharding.request,
                             run: RunDirectory(out), dryRun: sharding.dryRun, progress: ShardingOptions.progress)
        }
        for warning in planned.warnings { note("warning: \(warning)") }
        sharding.report(planned, out: out)
    }
}

extension DEParameters.Metric: ExpressibleByArgument {}
extension DEParameters.Log1p: ExpressibleByArgument {}

/// `a,b,c` or `@file` (one item per line, blank lines ignored).
enum ListArgument {
    static func parse(_ text: String, option: String) throws -> [String] {
        if text.hasPrefix("@") {
            let path = String(text.dropFirst())
            guard let content = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("\(option): cannot read \(path)")
            }
            return content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("\(option) is empty") }
        return items
    }
}

/// `--axis`, `--shards`, `--target-shard-seconds`, `--dry-run`, `--threads`, `--memory`.
struct ShardingOptions: ParsableArguments {
    @Option(help: "Split along features, celltypes (DiD --by-celltype) or perturbations (DE). Default: the cheapest read for the file's storage.")
    var axis: Plan.Axis?

    @Option(help: "Number of shards (default: from --target-shard-seconds and the cost model).")
    var shards: Int?

    @Option(help: "Aim for shards of about this many seconds of work.")
    var targetShardSeconds = ShardingRequest.defaultTargetShardSeconds

    @Flag(help: "Print the plan (plan.txt) and write nothing.")
    var dryRun = false

    @Option(help: "Threads per worker.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp("Memory budget per worker in GB; reads and gathers stay within it.",
                               discussion: "Default: DiD 2; DE enough to gather a shard's cells × genes in one pass (at least 2, at most half of this machine's memory or 16)."))
    var memory: Double?

    func validate() throws {
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        guard targetShardSeconds > 0 else { throw ValidationError("--target-shard-seconds must be positive") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let memory, !(memory > 0) { throw ValidationError("--memory must be a positive number of GB") }
    }

    var request: ShardingRequest {
        ShardingRequest(axis: axis, shards: shards, targetShardSeconds: targetShardSeconds, threads: threads, memoryGB: memory)
    }

    static let progress: Planner.Progress = { line in FileHandle.standardError.write(Data("sctrial-plan: \(line)\n".utf8)) }

    func report(_ planned: PlannedRun, out: String) {
        print(planned.text, terminator: "")
        if !dryRun { print("next: sctrial-plan run \(out)   (or: sctrial-plan submit \(out))") }
    }
}

extension Plan.Axis: ExpressibleByArgument {}
