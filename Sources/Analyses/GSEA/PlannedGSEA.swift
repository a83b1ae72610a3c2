import Foundation
import Stats

/// Preranked GSEA (gseapy `prerank`; sctrial `run_gsea_did` when the ranking is a DiD over every
/// gene) as planned. The units are permutations (per cell type with --by-celltype): each shard
/// replays the shared permutation stream to its block and computes every set's null ES there;
/// the reducer pools the null of all shards for NES, nominal p, FDR and FWER, so the table is the
/// same whatever the shard count.
public struct PlannedGSEA: ShardedAnalysis {
    public static let name = "gsea"
    static let partKind: UInt8 = 3

    public var parameters: GSEAParameters
    /// Where the ranking comes from: a DiD run directory (relative to this run, or absolute)…
    public var didRun: String?
    /// …or a ranking file stored in this run.
    public var rankingFile: String?
    /// The gene sets, stored in this run as one GMT.
    public var geneSetsFile: String
    /// Independent preranks, one per cell type with --by-celltype (nil: one ranking).
    public var blocks: [String?]

    enum CodingKeys: String, CodingKey {
        case parameters, blocks
        case didRun = "did_run", rankingFile = "ranking_file", geneSetsFile = "gene_sets_file"
    }

    public func units(along axis: ShardAxis) -> [String] {
        blocks.flatMap { block in
            (1...parameters.permutations).map { permutation in block.map { "\($0) perm \(permutation)" } ?? "perm \(permutation)" }
        }
    }

    /// Unit `u`: its block and permutation number (1…nperm).
    func unit(_ u: Int) -> (block: Int, permutation: Int) {
        (u / parameters.permutations, u % parameters.permutations + 1)
    }

    /// One block's prerank: its cell type (nil without --by-celltype), the ranking, the sets that
    /// pass gseapy's filter in it (hit positions), and the walk's weights. What a report needs to
    /// draw running sums (`GSEA.runningEnrichmentScore`).
    public struct Problem: Sendable {
        public let block: String?
        public let ranking: GSEARanking
        public let sets: [GSEAGeneSet]
        public let weights: [Double]
    }

    /// The ranking of every block and the gene sets, as the planner stored them.
    public func problems(runDirectory: URL) throws -> [Problem] {
        let library = try GSEALibrary.read(stored: runDirectory.appendingPathComponent(geneSetsFile).path)
        let rankings: [GSEARanking]
        if let rankingFile {
            rankings = [try GSEARanking.read(runDirectory.appendingPathComponent(rankingFile).path)]
        } else if let didRun {
            let directory = didRun.hasPrefix("/") ? URL(fileURLWithPath: didRun) : runDirectory.appendingPathComponent(didRun)
            let results = try DiDResults.read(directory)
            rankings = blocks.map { block in
                GSEARanking(did: results.rows[block] ?? [], rankBy: parameters.rankBy, minUnits: parameters.minUnits)
            }
        } else {
            throw AnalysisError("\(runDirectory.path)/plan.json: a GSEA plan without its ranking source")
        }
        return zip(blocks, rankings).map { block, ranking in
            let sets = GSEA.filterGeneSets(geneNames: ranking.genes, sets: library.sets,
                                           minSize: parameters.minSize, maxSize: parameters.maxSize)
            return Problem(block: block, ranking: ranking, sets: sets,
                           weights: GSEA.weights(ranking: ranking.values, weight: parameters.weight))
        }
    }

    /// One shard: for each block it touches, the null ES of that block's sets over its
    /// permutations.
    public struct ShardResult: Sendable {
        struct Block: Sendable {
            let block: Int
            let null: GSEANullScores
        }
        let blocks: [Block]
        let units: Int
    }

    public func computeShard(_ input: ShardInput) throws -> ShardResult {
        guard input.axis == .permutations else {
            throw AnalysisError("\(input.planPath): a GSEA plan is split by permutations, not \(input.axis.rawValue)")
        }
        let problems = try problems(runDirectory: input.runDirectory)
        var blocks: [ShardResult.Block] = []
        var u = input.units.lowerBound
        while u < input.units.upperBound {
            let (block, first) = unit(u)
            let count = min(input.units.upperBound - u, parameters.permutations - first + 1)
            let problem = problems[block]
            let null = GSEA.nullScores(weights: problem.weights, sets: problem.sets.map(\.hits), seed: parameters.seed,
                                       version: parameters.engineVersion, permutations: first..<(first + count),
                                       threads: input.threads)
            blocks.append(.init(block: block, null: null))
            u += count
        }
        return ShardResult(blocks: blocks, units: input.units.count)
    }

    public func rowCount(_ result: ShardResult) -> Int { result.units }

    /// Part body: per block, its index, first permutation, permutation count and set count
    /// (UInt32 each), then the null ES permutation-major as Float64.
    public func writePart<Sink: ByteSink>(_ result: ShardResult, input: ShardInput, keep: Bool,
                                          into sink: inout Sink) throws -> (any Sendable)? {
        var out = BinaryEncoder()
        out.header(kind: Self.partKind, shard: input.index, rows: result.units)
        out.append(UInt32(result.blocks.count))
        for entry in result.blocks {
            out.append(UInt32(entry.block))
            out.append(UInt32(entry.null.permutations.lowerBound))
            out.append(UInt32(entry.null.permutations.count))
            out.append(UInt32(entry.null.setCount))
            for value in entry.null.values { out.append(value) }
        }
        try sink.append(bytes: out.bytes)
        return keep ? result : nil
    }

    static func decodePart(_ file: URL, shard: Int) throws -> ShardResult {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw AnalysisError("\(file.path): cannot read part: \(error.localizedDescription)")
        }
        var input = BinaryDecoder(data, file: file.path)
        let units = try input.header(kind: partKind, shard: shard)
        var blocks: [ShardResult.Block] = []
        for _ in 0..<Int(try input.read(UInt32.self)) {
            let block = Int(try input.read(UInt32.self))
            let first = Int(try input.read(UInt32.self))
            let count = Int(try input.read(UInt32.self))
            let sets = Int(try input.read(UInt32.self))
            guard first >= 1, data.count - input.offset >= count * sets * 8 else {
                throw AnalysisError("\(file.path): damaged part (block \(block))")
            }
            var values: [Double] = []
            values.reserveCapacity(count * sets)
            for _ in 0..<(count * sets) { values.append(try input.double()) }
            blocks.append(.init(block: block, null: GSEANullScores(setCount: sets, permutations: first..<(first + count), values: values)))
        }
        try input.finish()
        return ShardResult(blocks: blocks, units: units)
    }

    public static let columns = ["Term", "ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val", "Tag %", "Gene %", "Lead_genes"]

    public func reduce<Sink: ByteSink>(_ input: ReduceInput, into table: inout Sink) throws -> TableSummary {
        let problems = try problems(runDirectory: input.runDirectory)
        guard input.parts.count == input.shardCount else {
            throw AnalysisError("\(input.runDirectory.path): GSEA statistics pool every permutation; a partial reduce is not possible")
        }
        var nulls = Array(repeating: [GSEANullScores](), count: blocks.count)
        for part in input.parts {
            let result = try (part.kept as? ShardResult) ?? Self.decodePart(part.file, shard: part.shard)
            for entry in result.blocks {
                guard entry.block < blocks.count, entry.null.setCount == problems[entry.block].sets.count else {
                    throw AnalysisError("\(part.file.path): part does not match the run's gene sets; plan the run again")
                }
                nulls[entry.block].append(entry.null)
            }
        }
        let byCelltype = blocks.count > 1 || blocks.first! != nil
        try table.append((byCelltype ? ["celltype"] : []).joined() + (byCelltype ? "," : "") + Self.columns.joined(separator: ",") + "\n")
        var rows = 0
        var fdr: [Double] = []
        for (index, problem) in problems.enumerated() where !problem.sets.isEmpty {
            guard let null = GSEANullScores.concatenating(nulls[index]),
                  null.permutations == 1..<(parameters.permutations + 1) else {
                throw AnalysisError("\(input.runDirectory.path): the parts do not cover permutations 1-\(parameters.permutations)\(blocks[index].map { " of \($0)" } ?? ""); rerun the missing shards")
            }
            let observed = problem.sets.map { GSEA.enrichmentScore(weights: problem.weights, hits: $0.hits) }
            let results = GSEA.results(sets: problem.sets, weights: problem.weights, observed: observed, null: null,
                                       pooling: parameters.pooling)
            var text = ""
            for row in results {
                var fields = byCelltype ? [CSVText.field(blocks[index] ?? "")] : []
                fields += [CSVText.field(row.term), CSVText.number(row.es), CSVText.number(row.nes), CSVText.number(row.nominalP),
                           CSVText.number(row.fdr), CSVText.number(row.fwer), CSVText.field(row.tagPercent),
                           CSVText.field(row.genePercent), CSVText.field(row.leadGenes(names: problem.ranking.genes))]
                text += fields.joined(separator: ",") + "\n"
                fdr.append(row.fdr)
                rows += 1
            }
            try table.append(text)
        }
        return TableSummary(rows: rows, fdrColumn: "FDR q-val", fdr: fdr)
    }
}
