import Foundation
import Stats
import Testing

/// Goldens from the real gseapy (tools/goldens/gsea/make_goldens.py): tie-free rankings and synthetic
/// sets in inputs.json, one file per case with res2d rows and, for some cases, the Rust core's raw
/// null ES. Floats are repr strings, parsed with the correctly rounded `Double(String)`.
struct GSEAGoldens {
    struct Input: Decodable {
        let genes: [String]
        let ranking: [String]
        let gene_sets: [String: [String]]
    }
    struct Row: Decodable {
        let term: String
        let es: String
        let nes: String
        let nom_p: String
        let fdr: String
        let fwer: String
        let tag: String
        let gene: String
        let lead_genes: String
    }
    struct Case: Decodable {
        let name: String
        let input: String
        let weight: String
        let seed: UInt64
        let nperm: Int
        let min_size: Int
        let max_size: Int
        let rng: String
        let gseapy: String
        let rows: [Row]
        let null: [String: [String]]?
        let null_es: [String: String]?
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Goldens/gsea")

    static let inputs: [String: Input] = load("inputs.json")
    static let cases: [Case] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") && $0 != "inputs.json" }.sorted().map { load($0) }
    }()

    static func load<T: Decodable>(_ file: String) -> T {
        let url = directory.appendingPathComponent(file)
        do {
            return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load \(url.path): \(error); run tools/goldens/gsea/regenerate.sh")
        }
    }
}

private func double(_ s: String) -> Double {
    guard let d = Double(s) else { fatalError("not a float: \(s)") }
    return d
}

/// |a − b| / max(|a|, |b|), 0 when both are equal (including both NaN).
private func relativeDifference(_ a: Double, _ b: Double) -> Double {
    if a == b || (a.isNaN && b.isNaN) { return 0 }
    return Swift.abs(a - b) / Swift.max(Swift.abs(a), Swift.abs(b))
}

@Suite struct GSEARandomTests {
    @Test func smallRngVectors() {
        var rng = SmallRng(seed: 123, version: .rand09)
        #expect((0..<4).map { _ in rng.nextUInt64() }
            == [0xa556_5735_f810_987a, 0xd691_4642_e58d_662e, 0xaa75_21fe_b709_887f, 0x863c_d15c_558d_6bfb])
        var rng32 = SmallRng(seed: 123, version: .rand09)
        #expect((0..<4).map { _ in rng32.nextUInt32() } == [2_773_899_061, 3_599_844_930, 2_859_803_134, 2_252_132_700])
    }

    @Test func increasingUniformBounds() {
        let expected: [(UInt32, UInt32, Int)] = [(2, 479_001_600, 11), (3, 3_113_510_400, 11), (4, 1_037_836_800, 10),
                                                 (5, 3_632_428_800, 10), (13, 253_955_520, 7)]
        for (m, bound, count) in expected {
            let got = gseaIncreasingUniformBound(m)
            #expect(got.bound == bound && got.count == count, "m = \(m)")
        }
    }

    static func permutations(_ n: Int, seed: UInt64, _ version: GSEARandomVersion, count: Int) -> [[Int32]] {
        var p = GenePermutations(geneCount: n, seed: seed, version: version)
        #expect(p.current == (0..<n).map { Int32($0) }, "perm_0 is the identity")
        return (0..<count).map { _ in p.advance(); return p.current }
    }

    @Test func permutationVectorsRand09() {
        #expect(Self.permutations(10, seed: 123, .rand09, count: 3) == [
            [2, 5, 9, 6, 8, 7, 3, 4, 0, 1], [6, 3, 4, 0, 5, 2, 1, 8, 9, 7], [6, 5, 8, 2, 3, 4, 0, 1, 7, 9],
        ])
        #expect(Self.permutations(20, seed: 0, .rand09, count: 2) == [
            [3, 0, 5, 19, 17, 15, 14, 18, 9, 10, 4, 8, 16, 1, 2, 13, 12, 6, 7, 11],
            [2, 4, 19, 17, 0, 11, 12, 6, 13, 7, 9, 18, 15, 8, 1, 5, 3, 16, 14, 10],
        ])
    }

    @Test func permutationVectorsRand08() {
        #expect(Self.permutations(10, seed: 123, .rand08, count: 2) == [
            [3, 6, 0, 5, 7, 2, 1, 8, 9, 4], [5, 9, 8, 7, 3, 0, 2, 6, 1, 4],
        ])
    }

    @Test(arguments: GSEARandomVersion.allCases)
    func fastForwardEqualsSequential(version: GSEARandomVersion) {
        var sequential = GenePermutations(geneCount: 1000, seed: 42, version: version)
        var seen: [Int: [Int32]] = [:]
        for _ in 0..<60 {
            sequential.advance()
            seen[sequential.index] = sequential.current
        }
        for target in [1, 7, 33, 60] {
            var jumped = GenePermutations(geneCount: 1000, seed: 42, version: version)
            jumped.fastForward(to: target)
            #expect(jumped.index == target && jumped.current == seen[target], "perm \(target)")
        }
    }
}

@Suite struct GSEATests {
    // MARK: Walk rules

    /// |max| = |min| exactly: the extreme reached first wins (strict `>`), in either order.
    @Test func firstExtremeWins() {
        let w = [1.0, 1.0, 1.0, 1.0]
        // Hits {0, 3}: +0.5 after the first hit, then −0.5 just before the second.
        #expect(GSEA.enrichmentScore(weights: w, hits: [0, 3]) == 0.5)
        // Hits {1, 2}: −0.5 before the first hit, later +0.5.
        #expect(GSEA.enrichmentScore(weights: w, hits: [1, 2]) == -0.5)
        // numpy's argmax/argmin also take the first index of a repeated extreme.
        let edge = GSEA.leadingEdge(weights: w, hits: [1, 2], es: -0.5)
        #expect(edge.extremeIndex == 0 && edge.positions == [2, 1] && edge.tagPercent == "2/2")
        #expect(edge.genePercent == "100.00%")
    }

    /// Weight 0 gives 1 for every gene, including a ranking value of exactly 0 (0^0 = 1).
    @Test func weightZero() {
        #expect(GSEA.weights(ranking: [2.5, 0.0, -0.0, -1.0], weight: 0) == [1, 1, 1, 1])
        #expect(GSEA.weights(ranking: [2.5, 0.0, -1.0], weight: 1) == [2.5, 0, 1])
        #expect(GSEA.weights(ranking: [3.0, -0.5], weight: 2) == [9, 0.25])
    }

    /// Python `"{0:.2%}"`: ×100 in binary, then correct rounding of the exact value, ties to even.
    @Test func percentFormatting() {
        let cases: [(Double, String)] = [
            (0.0525, "5.25%"), (1.0, "100.00%"), (1.0 / 2000, "0.05%"), (0.00125, "0.12%"), (0, "0.00%"),
            (2003.0 / 20000, "10.02%"), (16251.0 / 20000, "81.25%"), (1868.0 / 3200, "58.38%"),
            (5959.0 / 20000, "29.79%"), (1463.0 / 20000, "7.32%"), (13835.0 / 20000, "69.17%"),
            (12329.0 / 20000, "61.65%"), (13075.0 / 20000, "65.38%"), (18951.0 / 20000, "94.75%"),
            (10039.0 / 20000, "50.20%"), (4479.0 / 20000, "22.39%"), (675.0 / 20000, "3.38%"),
        ]
        for (x, expected) in cases {
            #expect(GSEA.pythonPercent2(x) == expected, "\(x)")
        }
    }

    @Test func poolKeys() {
        #expect(GSEA.poolKey("LIB__A__B") == "LIB")
        #expect(GSEA.poolKey("plain") == "")
    }

    // MARK: Null blocks

    static func syntheticProblem() -> (weights: [Double], sets: [[Int32]]) {
        var rng = SmallRng(seed: 7, version: .rand09)
        let n = 800
        let ranking = (0..<n).map { Double(n - $0) / 100.0 - 3.0 }
        let sets: [[Int32]] = (0..<25).map { s in
            let k = 15 + s * 7
            var picked = Set<Int32>()
            while picked.count < k { picked.insert(Int32(rng.nextUInt32() % UInt32(n))) }
            return picked.sorted()
        }
        return (GSEA.weights(ranking: ranking, weight: 1), sets)
    }

    @Test(arguments: GSEARandomVersion.allCases)
    func blocksConcatenateToTheWhole(version: GSEARandomVersion) {
        let (w, sets) = Self.syntheticProblem()
        let whole = GSEA.nullScores(weights: w, sets: sets, seed: 123, version: version, permutations: 1..<201)
        let cuts = [1, 2, 57, 58, 150, 201]
        let blocks = zip(cuts, cuts.dropFirst()).map {
            GSEA.nullScores(weights: w, sets: sets, seed: 123, version: version, permutations: $0..<$1)
        }
        #expect(GSEANullScores.concatenating(blocks) == whole)
        #expect(GSEANullScores.concatenating([blocks[1], blocks[0]]) == nil)
        let threaded = GSEA.nullScores(weights: w, sets: sets, seed: 123, version: version, permutations: 1..<201,
                                       threads: 2)
        #expect(threaded == whole)
        // The scatter over positions gives the same walk as sorted(inv_j[H]) over each permutation.
        var perms = GenePermutations(geneCount: w.count, seed: 123, version: version)
        for j in 1...20 {
            perms.advance()
            var inverse = [Int32](repeating: 0, count: w.count)
            for (p, g) in perms.current.enumerated() { inverse[Int(g)] = Int32(p) }
            for (s, hits) in sets.enumerated() {
                let nullHits = hits.map { inverse[Int($0)] }.sorted()
                #expect(GSEA.enrichmentScore(weights: w, hits: nullHits) == whole.score(set: s, permutation: j))
            }
        }
    }

    // MARK: Parity with gseapy

    @Test(arguments: GSEAGoldens.cases.map(\.name))
    func parityWithGseapy(caseName: String) throws {
        let c = GSEAGoldens.cases.first { $0.name == caseName }!
        let input = GSEAGoldens.inputs[c.input]!
        let ranking = input.ranking.map(double)
        let setList = input.gene_sets.keys.sorted().map { (term: $0, genes: input.gene_sets[$0]!) }
        let sets = GSEA.filterGeneSets(geneNames: input.genes, sets: setList, minSize: c.min_size,
                                       maxSize: c.max_size)
        let version: GSEARandomVersion = c.rng == "rand08" ? .rand08 : .rand09
        // gseapy 1.1.x pools FDR/FWER over all sets; ≥ 1.3 by term prefix.
        let pooling: GSEAPooling = c.gseapy.hasPrefix("1.1.") ? .all : .termPrefix
        let rows = try GSEA.prerank(ranking: ranking, weight: double(c.weight), sets: sets,
                                    permutationCount: c.nperm, seed: c.seed, version: version, pooling: pooling)
        #expect(Set(rows.map(\.term)) == Set(c.rows.map(\.term)), "tested terms")
        #expect(rows.count == c.rows.count)

        var maxDiff = 0.0
        let ours = Dictionary(uniqueKeysWithValues: rows.map { ($0.term, $0) })
        for golden in c.rows {
            guard let row = ours[golden.term] else { continue }
            for (name, mine, theirs) in [("ES", row.es, golden.es), ("NES", row.nes, golden.nes),
                                         ("NOM p", row.nominalP, golden.nom_p), ("FDR", row.fdr, golden.fdr),
                                         ("FWER", row.fwer, golden.fwer)] {
                let d = relativeDifference(mine, double(theirs))
                maxDiff = Swift.max(maxDiff, d)
                #expect(d <= 1e-12, "\(c.name) \(golden.term) \(name): \(mine) vs \(theirs)")
            }
            #expect(row.tagPercent == golden.tag, "\(c.name) \(golden.term) Tag %")
            #expect(row.genePercent == golden.gene, "\(c.name) \(golden.term) Gene %")
            #expect(row.leadGenes(names: input.genes) == golden.lead_genes, "\(c.name) \(golden.term) Lead_genes")
        }
        // Rows come out in |NES| descending order (gseapy's ties are unordered; ours by term).
        #expect(zip(rows, rows.dropFirst()).allSatisfy { Swift.abs($0.nes) >= Swift.abs($1.nes) })

        // The Rust core's raw null ES, value for value.
        var maxNullDiff: Double?
        if let null = c.null, let nullES = c.null_es {
            let weights = GSEA.weights(ranking: ranking, weight: double(c.weight))
            let scores = GSEA.nullScores(weights: weights, sets: sets.map(\.hits), seed: c.seed, version: version,
                                         permutations: 1..<(c.nperm + 1))
            #expect(Set(null.keys) == Set(sets.map(\.term)))
            maxNullDiff = 0
            for (s, set) in sets.enumerated() {
                guard let expected = null[set.term] else { continue }
                let mine = scores.scores(forSet: s)
                #expect(mine.count == expected.count)
                for (a, b) in zip(mine, expected.map(double)) {
                    maxNullDiff = Swift.max(maxNullDiff!, relativeDifference(a, b))
                }
                #expect(GSEA.enrichmentScore(weights: weights, hits: set.hits) == double(nullES[set.term]!))
            }
            #expect(maxNullDiff == 0, "\(c.name) raw null")
        }
        print("GSEA parity \(c.name): \(rows.count) terms, max relative difference \(maxDiff)"
            + (maxNullDiff.map { ", raw null ES max relative difference \($0)" } ?? ""))

        // Where prefixes exist, the golden tells the two poolings apart (so the rule is really tested).
        if sets.contains(where: { $0.term.contains("__") }) {
            let other = try GSEA.prerank(ranking: ranking, weight: double(c.weight), sets: sets,
                                         permutationCount: c.nperm, seed: c.seed, version: version,
                                         pooling: pooling == .all ? .termPrefix : .all)
            let otherByTerm = Dictionary(uniqueKeysWithValues: other.map { ($0.term, $0) })
            #expect(rows.contains { $0.fdr != otherByTerm[$0.term]!.fdr || $0.fwer != otherByTerm[$0.term]!.fwer },
                    "\(c.name): pooling makes no difference here")
        }
    }

    /// What a sharded run does (blocks of permutations, joined, then `results`) equals one `prerank`.
    @Test func shardedRunEqualsWholeRun() throws {
        let c = GSEAGoldens.cases.first { $0.name == "n2000_w1_s42_p1000" }!
        let input = GSEAGoldens.inputs[c.input]!
        let ranking = input.ranking.map(double)
        let sets = GSEA.filterGeneSets(geneNames: input.genes,
                                       sets: input.gene_sets.keys.sorted().map { ($0, input.gene_sets[$0]!) },
                                       minSize: c.min_size, maxSize: c.max_size)
        let whole = try GSEA.prerank(ranking: ranking, weight: 1, sets: sets, permutationCount: c.nperm, seed: c.seed)
        let w = GSEA.weights(ranking: ranking, weight: 1)
        let cuts = [1, 300, 301, 777, c.nperm + 1]
        let blocks = zip(cuts, cuts.dropFirst()).map {
            GSEA.nullScores(weights: w, sets: sets.map(\.hits), seed: c.seed, version: .rand09, permutations: $0..<$1)
        }
        let null = try #require(GSEANullScores.concatenating(blocks))
        let observed = sets.map { GSEA.enrichmentScore(weights: w, hits: $0.hits) }
        #expect(GSEA.results(sets: sets, weights: w, observed: observed, null: null) == whole)
    }

    @Test func refusesZeroPermutations() {
        #expect(throws: GSEAError.noPermutations) {
            try GSEA.prerank(ranking: [3, 2, 1], weight: 1, sets: [GSEAGeneSet(term: "a", hits: [0])],
                             permutationCount: 0, seed: 1)
        }
    }
}
