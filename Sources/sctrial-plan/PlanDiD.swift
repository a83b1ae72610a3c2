import Analyses
import ArgumentParser
import Foundation
import Orchestration
import TOMLKit

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

    @OptionGroup(title: "Design")
    var design: DiDDesignOptions

    @OptionGroup(title: "Features")
    var features: DiDFeatureOptions

    @OptionGroup(title: "Bootstrap seed")
    var bootstrapSeed: DiDBootstrapSeed

    @OptionGroup(title: "Sharding and resources")
    var sharding: ShardingOptions

    func run() throws {
        try probeInputFile(input)
        let planned = try reportingFailure { () throws -> PlannedRun in
            try Planner.plan(DiDPlanner(parameters: try design.parameters(features: features, bootstrapSeed: bootstrapSeed.seed)), input: input, request: sharding.request, run: RunDirectory(out),
                                dryRun: sharding.dryRun, progress: ShardingOptions.progress)
        }
        sharding.report(planned, out: out)
    }
}

/// The trial design and the DiD options, shared by `plan did` and `plan gsea` (whose ranking
/// is a DiD over every gene).
struct DiDDesignOptions: ParsableArguments {
    @Option(help: "The two visits compared, PRE,POST (values of --visit-col).")
    var visits: String?

    @Option(help: "obs column identifying participants (fixed effect and cluster; default participant_id).")
    var participantCol: String?

    @Option(help: "obs column of visits (default visit).")
    var visitCol: String?

    @Option(help: "obs column of arms (default arm).")
    var armCol: String?

    @Option(help: "Label of the treated arm; every other label is control (default Treated).")
    var treated: String?

    @Option(help: "Label of the control arm (recorded; did_table treats every non-treated label as control; default Control).")
    var control: String?

    @Option(help: "obs column of cell types (default celltype).")
    var celltypeCol: String?

    @Option(help: "obs column flagging crossover cells, which are excluded (true/yes/1).")
    var crossoverCol: String?

    @Option(help: "Analyse only this cell type.")
    var celltype: String?

    @Flag(help: "One did_table per cell type (did_table_by_celltype), with a stratified FDR.")
    var byCelltype = false

    @Option(help: "Cell types for --by-celltype: a,b,c (default: all, sorted).")
    var celltypes: String?

    @Option(help: "Matrix of the gene features (and of gene-set scoring): a layer name (default X).")
    var layer: String?

    @Option(help: "Test log1p(CPM) computed from this counts layer (library sizes over the kept genes).")
    var log1pCpmFrom: String?

    @Option(help: "Drop genes whose total count (in the counts source: --log1p-cpm-from, else the analysed matrix) is below this.")
    var minGeneCounts: Double?

    @Option(help: "participant_visit (default), participant_visit_celltype or cell.")
    var aggregate: DiDParameters.Aggregate?

    @Option(help: "Per-group statistic: mean (default), median or pct_pos (percentage of cells above 0).")
    var agg: DiDParameters.Statistic?

    @Option(help: "obs columns entered as covariates: a,b.")
    var covariates: String?

    @Flag(help: "Do not standardise each feature before fitting.")
    var noStandardize = false

    @Flag(help: "Wild cluster bootstrap p-values and CIs (Rademacher signs, as numpy's default_rng).")
    var bootstrap = false

    @Option(help: "Bootstrap draws (default 999).")
    var nBoot: Int?


    @Option(help: "A TOML file holding the design (keys as the long options with underscores, e.g. participant_col, visits = [\"pre\", \"post\"]); flags override it.")
    var config: String?

    func validate() throws {
        if celltype != nil && byCelltype { throw ValidationError("--celltype and --by-celltype exclude each other") }
        if let nBoot, nBoot < 1 { throw ValidationError("--n-boot must be at least 1") }
    }

    /// Flags over the config file over sctrial's defaults; every gene is a feature unless
    /// `featureOptions` (`plan did`'s) say otherwise.
    func parameters(features featureOptions: DiDFeatureOptions? = nil, bootstrapSeed seed: UInt64? = nil) throws -> DiDParameters {
        let file = try config.map { try DesignFile(path: $0) } ?? DesignFile()
        var p = DiDParameters()
        if let visits { p.visits = try ListArgument.parse(visits, option: "--visits") } else if let v = file.visits { p.visits = v }
        guard p.visits.count == 2, p.visits[0] != p.visits[1] else {
            throw ValidationError("--visits needs two different visits, PRE,POST (on the command line or as visits = [PRE, POST] in --config)")
        }
        p.participantCol = participantCol ?? file.participantCol ?? p.participantCol
        p.visitCol = visitCol ?? file.visitCol ?? p.visitCol
        p.armCol = armCol ?? file.armCol ?? p.armCol
        p.treated = treated ?? file.treated ?? p.treated
        p.control = control ?? file.control ?? p.control
        p.celltypeCol = celltypeCol ?? file.celltypeCol ?? p.celltypeCol
        p.crossoverCol = crossoverCol ?? file.crossoverCol
        p.celltype = celltype ?? (byCelltype ? nil : file.celltype)
        p.byCelltype = byCelltype || (celltype == nil && file.byCelltype == true)
        p.celltypes = try celltypes.map { try ListArgument.parse($0, option: "--celltypes") } ?? file.celltypes
        if p.celltype != nil && p.byCelltype { throw ValidationError("celltype and by_celltype exclude each other") }
        if p.celltypes != nil && !p.byCelltype { throw ValidationError("--celltypes needs --by-celltype") }
        p.layer = layer ?? file.layer
        p.log1pCPMFrom = log1pCpmFrom ?? file.log1pCPMFrom
        p.minGeneCounts = minGeneCounts ?? file.minGeneCounts
        if let featureOptions { try featureOptions.apply(to: &p, file: file, config: config) }
        p.aggregate = try aggregate ?? file.aggregate.map { (text) throws -> DiDParameters.Aggregate in
            guard let value = DiDParameters.Aggregate(rawValue: text) else { throw ValidationError("\(config ?? ""): aggregate '\(text)' is not one of participant_visit, participant_visit_celltype, cell") }
            return value
        } ?? p.aggregate
        p.statistic = try agg ?? file.agg.map { (text) throws -> DiDParameters.Statistic in
            guard let value = DiDParameters.Statistic(rawValue: text) else { throw ValidationError("\(config ?? ""): agg '\(text)' is not one of mean, median, pct_pos") }
            return value
        } ?? p.statistic
        p.covariates = try covariates.map { try ListArgument.parse($0, option: "--covariates") } ?? file.covariates ?? []
        p.standardize = !noStandardize && (file.standardize ?? true)
        if bootstrap || file.bootstrap == true {
            var settings = DiDParameters.Bootstrap()
            settings.draws = nBoot ?? file.nBoot ?? settings.draws
            settings.seed = seed ?? file.seed ?? settings.seed
            guard settings.draws >= 1 else { throw ValidationError("n_boot must be at least 1") }
            p.bootstrap = settings
        }
        return p
    }

}

/// `plan did`'s bootstrap seed (`plan gsea`'s --seed is gseapy's; its DiD keeps sctrial's 42, as
/// `run_gsea_did` does).
struct DiDBootstrapSeed: ParsableArguments {
    @Option(help: "Bootstrap seed, the same for every feature as in sctrial (default 42).")
    var seed: UInt64?
}

/// What `plan did` tests: genes, obs columns or gene-set scores.
struct DiDFeatureOptions: ParsableArguments {
    @Option(help: "Features: all (every gene; the default), a,b,c or @file (one per line); genes or numeric obs columns.")
    var features: String?

    @Option(help: "Gene sets to score and test: a GMT file or an http(s) URL (fetched once, at planning). Features default to every set score.")
    var geneSets: String?

    @Option(help: "Prefix of the score column names, e.g. ms_ (default none).")
    var setPrefix: String?

    @Option(help: "Gene-set score: zmean (mean of per-gene z-scores over all cells; default) or mean.")
    var scoreMethod: GeneSetScoring.Method?

    @Option(help: "Sets with fewer genes present in var get all-NaN scores (default 3).")
    var minGenes: Int?

    func validate() throws {
        if let minGenes, minGenes < 1 { throw ValidationError("--min-genes must be at least 1") }
    }

    func apply(to p: inout DiDParameters, file: DesignFile, config: String?) throws {
        let featureList = try features.map { $0 == "all" ? nil : try ListArgument.parse($0, option: "--features") } ?? file.features
        p.features = featureList.map { .named($0) } ?? .allGenes
        if let source = geneSets ?? file.geneSets {
            let collection = try GeneSetCollection.load(source)
            var sets = DiDParameters.GeneSets(source: source, sets: collection.sets.map { .init(name: $0.name, genes: $0.genes) })
            sets.prefix = setPrefix ?? file.setPrefix ?? ""
            sets.method = try scoreMethod ?? file.scoreMethod.map { (text) throws -> GeneSetScoring.Method in
                guard let method = GeneSetScoring.Method(rawValue: text) else { throw ValidationError("\(config ?? ""): score_method '\(text)' is not zmean or mean") }
                return method
            } ?? .zmean
            sets.minGenes = minGenes ?? file.minGenes ?? 3
            p.geneSets = sets
            if featureList == nil { p.features = .allSets }
        }
    }
}

extension DiDParameters.Aggregate: ExpressibleByArgument {}
extension DiDParameters.Statistic: ExpressibleByArgument {}
extension GeneSetScoring.Method: ExpressibleByArgument {}

/// The design as a TOML file (`--config`): keys are the long options with underscores. Unknown
/// keys are refused, so a typo never silently falls back to a default.
struct DesignFile {
    var visits: [String]?
    var participantCol, visitCol, armCol, treated, control, celltypeCol, crossoverCol, celltype: String?
    var byCelltype: Bool?
    var celltypes: [String]?
    var features: [String]?
    var layer, aggregate, agg, geneSets, setPrefix, scoreMethod, log1pCPMFrom: String?
    var minGenes: Int?
    var minGeneCounts: Double?
    var covariates: [String]?
    var standardize, bootstrap: Bool?
    var nBoot: Int?
    var seed: UInt64?

    init() {}

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("\(path): cannot read the design file")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch {
            throw ValidationError("\(path): not valid TOML (\(error))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = table[key] else { return nil }
            guard let text = value.string else { throw ValidationError("\(path): \(key) must be a string") }
            return text
        }
        func strings(_ key: String) throws -> [String]? {
            guard let value = table[key] else { return nil }
            if let text = value.string { return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            guard let array = value.array, array.allSatisfy({ $0.string != nil }) else {
                throw ValidationError("\(path): \(key) must be a list of strings")
            }
            return array.compactMap(\.string)
        }
        func bool(_ key: String) throws -> Bool? {
            guard let value = table[key] else { return nil }
            guard let flag = value.bool else { throw ValidationError("\(path): \(key) must be true or false") }
            return flag
        }
        func integer(_ key: String) throws -> Int? {
            guard let value = table[key] else { return nil }
            guard let number = value.int else { throw ValidationError("\(path): \(key) must be an integer") }
            return number
        }
        let known: Set<String> = ["visits", "participant_col", "visit_col", "arm_col", "treated", "control", "celltype_col",
                                  "crossover_col", "celltype", "by_celltype", "celltypes", "features", "layer", "aggregate", "agg",
                                  "covariates", "standardize", "bootstrap", "n_boot", "seed", "gene_sets", "set_prefix",
                                  "score_method", "min_genes", "log1p_cpm_from", "min_gene_counts"]
        if let unknown = table.keys.first(where: { !known.contains($0) }) {
            throw ValidationError("\(path): unknown key '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        visits = try strings("visits")
        participantCol = try string("participant_col")
        visitCol = try string("visit_col")
        armCol = try string("arm_col")
        treated = try string("treated")
        control = try string("control")
        celltypeCol = try string("celltype_col")
        crossoverCol = try string("crossover_col")
        celltype = try string("celltype")
        byCelltype = try bool("by_celltype")
        celltypes = try strings("celltypes")
        if let all = try? string("features"), all == "all" { features = nil } else { features = try strings("features") }
        layer = try string("layer")
        geneSets = try string("gene_sets")
        setPrefix = try string("set_prefix")
        scoreMethod = try string("score_method")
        minGenes = try integer("min_genes")
        log1pCPMFrom = try string("log1p_cpm_from")
        if let value = table["min_gene_counts"] {
            guard let number = value.double ?? value.int.map(Double.init) else { throw ValidationError("\(path): min_gene_counts must be a number") }
            minGeneCounts = number
        }
        aggregate = try string("aggregate")
        agg = try string("agg")
        covariates = try strings("covariates")
        standardize = try bool("standardize")
        bootstrap = try bool("bootstrap")
        nBoot = try integer("n_boot")
        seed = try integer("seed").map { UInt64(max(0, $0)) }
    }
}
