import Analyses
import ArgumentParser
import Foundation
import Orchestration

struct PlanGSEA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gsea",
        abstract: "Preranked GSEA on a DiD ranking (sctrial 1.0 run_gsea_did = gseapy prerank), permutations sharded.",
        discussion: """
            With an .h5ad input, a DiD over every gene (the design options below, sctrial's \
            did_table defaults) is planned as a prerequisite run in RUN/did whose feature shards go \
            first; genes are ranked by sign(beta_DiD)·−log10(p_DiD + 1e-12) (--rank-by), genes with \
            fewer than --min-units units left out, and the ranking goes to gseapy's prerank: gene-label \
            permutations drawn exactly as gseapy does (its Rust SmallRng; --gseapy-rng 0.8 for \
            gseapy ≤ 1.1.4), so ES, NES, NOM p, FDR q and FWER p are gseapy's to the bit. Equal \
            ranks keep var order (gseapy's own order within ties is unspecified). The permutations \
            are split into shards; the reducer pools them. --from-did RUN0 ranks an existing DiD \
            run's results; --ranking FILE runs prerank on a ranking (.rnk: gene<TAB>value; .csv: \
            header, gene first, value last). results.csv: Term, ES, NES, NOM p-val, FDR q-val, \
            FWER p-val, Tag %, Gene %, Lead_genes (celltype first with --by-celltype), sorted by |NES|.
            """)

    @Argument(help: "The .h5ad file (not with --ranking or --from-did).")
    var input: String?

    @Option(help: "Run directory to create.")
    var out: String

    @Option(help: "Gene sets: a GMT file, a directory of GMT files (terms become FILE__TERM), or an http(s) URL (fetched once, at planning). Named Enrichr libraries cannot be downloaded here.")
    var geneSets: String

    @Option(help: "A ranking file instead of a DiD: .rnk (gene<TAB>value) or .csv (header; gene first, value last).")
    var ranking: String?

    @Option(help: "An existing, reduced DiD run directory to rank instead of running a DiD.")
    var fromDid: String?

    @Option(help: "signed-logp (sign(beta)·−log10(p+1e-12), sctrial's signed_confidence; default), beta or tstat.")
    var rankBy: GSEAParameters.RankBy = .signedLogP

    @Option(help: "Leave out genes whose DiD had fewer units (default 4).")
    var minUnits = 4

    @Option(help: "Gene-label permutations (default 1000).")
    var permutations = 1000

    @Option(help: "Smallest gene set tested, in genes present in the ranking (default 15).")
    var minSize = 15

    @Option(help: "Largest gene set tested (default 500).")
    var maxSize = 500

    @Option(help: "Weight p of the walk, |rank|^p (default 1).")
    var weight = 1.0

    @Option(help: "Permutation seed (default 123, gseapy's).")
    var seed: UInt64 = 123

    @Option(help: "The permutation stream of gseapy ≥ 1.1.8 (0.9, default) or ≤ 1.1.4 (0.8).")
    var gseapyRng: GSEAParameters.RandomVersion = .v09

    @OptionGroup(title: "Design (with an .h5ad input)")
    var design: DiDDesignOptions

    @OptionGroup(title: "Sharding and resources")
    var sharding: ShardingOptions

    func validate() throws {
        guard minSize >= 1, maxSize >= minSize else { throw ValidationError("--min-size must be at least 1 and --max-size at least --min-size") }
        guard weight.isFinite, weight >= 0 else { throw ValidationError("--weight must be a finite number ≥ 0") }
        let given = [input != nil, ranking != nil, fromDid != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of: an .h5ad input, --ranking FILE, --from-did RUN") }
    }

    func run() throws {
        var parameters = GSEAParameters()
        parameters.rankBy = rankBy
        parameters.minUnits = minUnits
        parameters.permutations = permutations
        parameters.minSize = minSize
        parameters.maxSize = maxSize
        parameters.weight = weight
        parameters.seed = seed
        parameters.randomVersion = gseapyRng
        if let input { try probeInputFile(input) }
        let planned = try reportingFailure { () throws -> PlannedRun in
            let source: GSEAPlanner.Source
            let path: String
            if let ranking {
                (source, path) = (.ranking, ranking)
            } else if let fromDid {
                (source, path) = (.didRun(fromDid), URL(fileURLWithPath: fromDid).appendingPathComponent("results.csv").path)
            } else {
                (source, path) = (.did(try design.parameters()), input!)
            }
            return try Planner.plan(GSEAPlanner(source: source, geneSets: geneSets, parameters: parameters), input: path,
                                    request: sharding.request, run: RunDirectory(out), dryRun: sharding.dryRun,
                                    progress: ShardingOptions.progress)
        }
        sharding.report(planned, out: out)
    }
}

extension GSEAParameters.RankBy: ExpressibleByArgument {}
extension GSEAParameters.RandomVersion: ExpressibleByArgument {}
