import Foundation

/// Plans a preranked GSEA: the ranking from a DiD over every gene of an h5ad (planned as a
/// prerequisite run whose feature shards go first), from a DiD run already reduced, or from a
/// ranking file; the gene sets read once (a URL fetched once) and stored in the run; the
/// permutations split into contiguous blocks.
public struct GSEAPlanner: AnalysisPlanner {
    public enum Source: Sendable {
        /// A DiD over every gene of the input h5ad (sctrial `run_gsea_did`).
        case did(DiDParameters)
        /// The reduced DiD run in this directory.
        case didRun(String)
        /// The input is a ranking file (gseapy `prerank` alone).
        case ranking
    }

    public var source: Source
    /// A GMT file, a directory of them, or an http(s) URL.
    public var geneSets: String
    public var parameters: GSEAParameters
    public var analysisName: String { PlannedGSEA.name }

    public init(source: Source, geneSets: String, parameters: GSEAParameters) {
        self.source = source
        self.geneSets = geneSets
        self.parameters = parameters
    }

    /// Seconds per permutation: replaying the shuffle and scattering N genes, and walking Σk hits
    /// (measured with bench/gsea_benchmark.py on the reference machine).
    static let secondsPerGene = 6e-9
    static let secondsPerHit = 1.2e-8

    public func layout(input path: String, request: ShardingRequest, correction: CostCorrection?,
                       progress: (@Sendable (String) -> Void)?) throws -> AnalysisLayout {
        guard parameters.permutations >= 1 else { throw AnalysisError("--permutations must be at least 1") }
        if let axis = request.axis, axis != .permutations {
            throw AnalysisError("--axis \(axis.rawValue) is not for GSEA; GSEA splits by permutations (its DiD by features)")
        }
        let library = try GSEALibrary.load(geneSets)
        var prerequisite: Prerequisite?
        var identity = InputIdentity.contents
        var matrices: [String] = []
        var shape = (nObs: 0, nVars: 0)
        let universe: [String]
        let blocks: [String?]
        var didRun: String?
        var rankingFile: String?
        var stagedRanking: Data?
        let from: String
        switch source {
        case .did(let did):
            let didRequest = ShardingRequest(axis: nil, shards: request.shards, targetShardSeconds: request.targetShardSeconds,
                                             threads: request.threads, memoryGB: request.memoryGB)
            let layout = try DiDPlanner(parameters: did).layout(input: path, request: didRequest, correction: nil, progress: progress)
            guard let planned = layout.analysis as? PlannedDiD else { throw AnalysisError("\(path): the DiD planner planned no DiD") }
            prerequisite = Prerequisite(directory: "did", layout: layout)
            identity = .h5ad
            matrices = layout.matrices
            shape = (layout.nObs, layout.nVars)
            universe = planned.features
            blocks = planned.celltypes
            didRun = "did"
            from = "a DiD over \(planned.features.count) features of \(path)"
        case .didRun(let directory):
            let absolute = URL(fileURLWithPath: directory).standardizedFileURL
            let results = try DiDResults.read(absolute)
            universe = results.features
            blocks = results.celltypes
            didRun = absolute.path
            from = "the DiD run \(absolute.path)"
        case .ranking:
            let ranking = try GSEARanking.read(path)
            universe = ranking.genes
            blocks = [nil]
            rankingFile = "staged/ranking" + (path.lowercased().hasSuffix(".csv") ? ".csv" : ".rnk")
            stagedRanking = FileManager.default.contents(atPath: path)
            from = "the ranking \(path) (\(ranking.genes.count) genes)"
        }
        let names = Set(universe)
        if !library.genes.contains(where: { $0.contains(where: names.contains) }) && !library.terms.isEmpty {
            let example = library.genes.first?.prefix(3).joined(separator: ", ") ?? ""
            throw AnalysisError("\(geneSets): none of the genes of its \(library.terms.count) gene sets (e.g. \(example)) is in the ranking (e.g. \(universe.prefix(3).joined(separator: ", ")))")
        }
        // Each set's genes present in the ranking: sets outside the size window cannot be tested.
        let tested = library.genes.map { Set($0).filter(names.contains).count }
            .filter { parameters.minSize <= $0 && $0 <= parameters.maxSize && $0 < universe.count }
        let passing = tested.count
        guard passing > 0 else {
            throw AnalysisError("\(geneSets): no gene set has between --min-size \(parameters.minSize) and --max-size \(parameters.maxSize) genes in the ranking (fewer than its \(universe.count) genes); gseapy would stop with 'No gene sets passed through filtering condition'")
        }
        let hits = tested.reduce(0, +)
        let perPermutation = (Self.secondsPerGene * Double(universe.count) + Self.secondsPerHit * Double(hits))
            / Double(max(1, request.threads)) * (correction?.ratio ?? 1)
        let unitCosts = Array(repeating: perPermutation, count: blocks.count * parameters.permutations)
        let ranges = request.partition(unitCosts, fixedCost: 0)
        let memoryGB = request.memoryGB ?? ShardingRequest.defaultMemoryGB
        let memory = ranges.map { range in universe.count * 8 * 6 + range.count * passing * 8 * 2 + (64 << 20) }
        let analysis = PlannedGSEA(parameters: parameters, didRun: didRun, rankingFile: rankingFile,
                                   geneSetsFile: "staged/gene_sets.gmt", blocks: blocks)
        let cellTypes = blocks.count > 1 || blocks.first! != nil ? ", \(blocks.count) cell types" : ""
        let description = "GSEA prerank of \(from): \(library.terms.count) gene sets from \(geneSets) (\(passing) with \(parameters.minSize)-\(parameters.maxSize) genes present), \(parameters.permutations) permutations\(cellTypes), weight \(parameters.weight), seed \(parameters.seed), gseapy rng \(parameters.randomVersion.rawValue)"
        let model = String(format: "%.0f ns per gene + %.0f ns per hit, per permutation", Self.secondsPerGene * 1e9, Self.secondsPerHit * 1e9) + (correction?.text ?? "")
        var layout = AnalysisLayout(analysis: analysis, identity: identity, matrices: matrices, nObs: shape.nObs, nVars: shape.nVars,
                                    axis: .permutations, readPath: .ranking, ranges: ranges, unitCosts: unitCosts, fixedCost: 0,
                                    memoryBytes: memory, memoryGB: memoryGB, description: description, model: model) { staging in
            try staging.stageFile(analysis.geneSetsFile, contents: Data(library.gmt.utf8))
            if let rankingFile, let stagedRanking { try staging.stageFile(rankingFile, contents: stagedRanking) }
        }
        layout.prerequisite = prerequisite
        return layout
    }
}
