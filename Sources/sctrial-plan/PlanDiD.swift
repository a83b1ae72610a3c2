import Analyses
import ArgumentParser
import Foundation
import Orchestration

struct PlanDiD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "did",
        abstract: "Difference-in-differences with participant fixed effects (sctrial 1.0 did_table semantics).",
        discussion: """
            For each feature, cells of the two visits are averaged per participant × visit (× cell \
            type) and fitted by WLS with participant fixed effects, weights = cells per group: \
            beta_DiD is the visit × treated-arm interaction, with CRV1 cluster-robust SEs by \
            participant and normal p-values (nonrobust t fallback when the cluster SE is not \
            finite). results.csv has sctrial's columns (beta_DiD, se_DiD, p_DiD, beta_time, p_time, \
            n_units, resid_sd, cov_type_used, feature, FDR_DiD; the bootstrap columns with \
            --bootstrap; celltype and FDR_DiD_stratified with --by-celltype), sorted by p_DiD, and \
            a last `reason` column saying why a row is NaN. Defaults are sctrial's TrialDesign and \
            did_table defaults.
            """)

    @Argument(help: "The .h5ad file.")
    var input: String

    @Option(help: "Run directory to create.")
    var out: String

    @Option(help: "The two visits compared, PRE,POST (values of --visit-col).")
    var visits: String

    @Option(help: "obs column identifying participants (fixed effect and cluster).")
    var participantCol = "participant_id"

    @Option(help: "obs column of visits.")
    var visitCol = "visit"

    @Option(help: "obs column of arms.")
    var armCol = "arm"

    @Option(help: "Label of the treated arm; every other label is control.")
    var treated = "Treated"

    @Option(help: "Label of the control arm (recorded; did_table treats every non-treated label as control).")
    var control = "Control"

    @Option(help: "obs column of cell types.")
    var celltypeCol = "celltype"

    @Option(help: "obs column flagging crossover cells, which are excluded (true/yes/1).")
    var crossoverCol: String?

    @Option(help: "Analyse only this cell type.")
    var celltype: String?

    @Flag(help: "One did_table per cell type (did_table_by_celltype), with a stratified FDR.")
    var byCelltype = false

    @Option(help: "Cell types for --by-celltype: a,b,c (default: all, sorted).")
    var celltypes: String?

    @Option(help: "Features: all (every gene), a,b,c or @file (one per line); genes or numeric obs columns.")
    var features = "all"

    @Option(help: "Matrix of the gene features: a layer name (default X).")
    var layer: String?

    @Option(help: "participant_visit, participant_visit_celltype or cell.")
    var aggregate: DiDParameters.Aggregate = .participantVisit

    @Option(help: "Per-group statistic: mean, median or pct_pos (percentage of cells above 0).")
    var agg: DiDParameters.Statistic = .mean

    @Option(help: "obs columns entered as covariates: a,b.")
    var covariates: String?

    @Flag(help: "Do not standardise each feature before fitting.")
    var noStandardize = false

    @Flag(help: "Wild cluster bootstrap p-values and CIs (Rademacher signs, as numpy's default_rng).")
    var bootstrap = false

    @Option(help: "Bootstrap draws.")
    var nBoot = 999

    @Option(help: "Bootstrap seed (the same for every feature, as sctrial).")
    var seed: UInt64 = 42

    @Option(help: "Threads per worker.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if celltype != nil && byCelltype { throw ValidationError("--celltype and --by-celltype exclude each other") }
        if celltypes != nil && !byCelltype { throw ValidationError("--celltypes needs --by-celltype") }
        if nBoot < 1 { throw ValidationError("--n-boot must be at least 1") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func parameters() throws -> DiDParameters {
        var p = DiDParameters()
        p.visits = try ListArgument.parse(visits, option: "--visits")
        guard p.visits.count == 2, p.visits[0] != p.visits[1] else {
            throw ValidationError("--visits needs two different visits, PRE,POST")
        }
        p.participantCol = participantCol
        p.visitCol = visitCol
        p.armCol = armCol
        p.treated = treated
        p.control = control
        p.celltypeCol = celltypeCol
        p.crossoverCol = crossoverCol
        p.celltype = celltype
        p.byCelltype = byCelltype
        p.celltypes = try celltypes.map { try ListArgument.parse($0, option: "--celltypes") }
        p.features = features == "all" ? .allGenes : .named(try ListArgument.parse(features, option: "--features"))
        p.layer = layer
        p.aggregate = aggregate
        p.statistic = agg
        p.covariates = try covariates.map { try ListArgument.parse($0, option: "--covariates") } ?? []
        p.standardize = !noStandardize
        if bootstrap {
            var settings = DiDParameters.Bootstrap()
            settings.draws = nBoot
            settings.seed = seed
            p.bootstrap = settings
        }
        return p
    }

    func run() throws {
        let parameters = try parameters()
        let plan = try reportingFailure {
            try DiDRun.plan(input: input, parameters: parameters, run: RunDirectory(out), threads: threads)
        }
        print("planned DiD in \(out): \(plan.input.nObs) cells × \(plan.input.nVars) genes, visits \(visits)")
        print("next: sctrial-plan run \(out)")
    }
}

extension DiDParameters.Aggregate: ExpressibleByArgument {}
extension DiDParameters.Statistic: ExpressibleByArgument {}
