import Foundation
import Testing
@testable import Analyses

/// sctrial's ranking of DiD results (GSEA-SEMANTICS §1.3) and the tie cases it leaves: a failed
/// fit ranks −0.0 and stays in, a p-value below ~1e-28 ranks exactly ±12, bootstrap p-values tie;
/// ties keep the input (var) order.
@Suite struct GSEARankingTests {
    func entry(_ feature: String, beta: Double, p: Double, se: Double = 0.1, units: Double = 10) -> GSEARanking.DiDEntry {
        GSEARanking.DiDEntry(feature: feature, beta: beta, se: se, p: p, units: units)
    }

    @Test func failedFitsRankMinusZeroAndStayIn() {
        let ranking = GSEARanking(did: [entry("a", beta: .nan, p: .nan), entry("b", beta: 0.5, p: 0.01),
                                        entry("c", beta: .nan, p: .nan), entry("d", beta: -0.2, p: 0.2)],
                                  rankBy: .signedLogP, minUnits: 4)
        #expect(ranking.genes == ["b", "a", "c", "d"])
        #expect(ranking.values[1] == 0 && ranking.values[1].sign == .minus)
        #expect(ranking.values[2].sign == .minus && ranking.values[2] == 0)
        #expect(ranking.values[0] == -log10(0.01 + 1e-12))
    }

    @Test func tinyPValuesAreCappedAtTwelveAndTieInVarOrder() {
        let ranking = GSEARanking(did: [entry("x", beta: 1, p: 1e-40), entry("y", beta: 2, p: 0), entry("z", beta: 1, p: 1e-3),
                                        entry("w", beta: -3, p: 1e-300)],
                                  rankBy: .signedLogP, minUnits: 4)
        #expect(ranking.genes == ["x", "y", "z", "w"])
        #expect(ranking.values[0] == 12 && ranking.values[1] == 12 && ranking.values[3] == -12)
    }

    @Test func discreteBootstrapPValuesTieInVarOrder() {
        // (count + 1) / (B + 1) with B = 99: many genes share p = 0.01 or 0.02.
        let rows = (0..<6).map { entry("g\($0)", beta: 0.1 * Double($0 + 1), p: $0 % 2 == 0 ? 0.01 : 0.02) }
        let ranking = GSEARanking(did: rows, rankBy: .signedLogP, minUnits: 4)
        #expect(ranking.genes == ["g0", "g2", "g4", "g1", "g3", "g5"])
    }

    @Test func minUnitsInfiniteAndOtherRules() {
        let rows = [entry("few", beta: 1, p: 0.01, units: 3), entry("t", beta: 0.3, p: 0.5, se: .nan),
                    entry("inf", beta: .infinity, p: 0.5), entry("n", beta: -0.6, p: 0.5, se: 0.2)]
        let tstat = GSEARanking(did: rows, rankBy: .tstat, minUnits: 4)
        #expect(tstat.genes == ["t", "n"])           // `few` under min_units; ±inf dropped
        #expect(tstat.values == [0.3 / (1 + 1e-12), -0.6 / (0.2 + 1e-12)])
        let beta = GSEARanking(did: rows, rankBy: .beta, minUnits: 3)
        #expect(beta.genes == ["few", "t", "n"])
    }

    @Test func rankingFilesParseAndRefuseClearly() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rnk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let rnk = directory.appendingPathComponent("a.rnk").path
        try "# comment\ngene\tscore\nA\t1.5\nB\tnan\nC\t-2\nD\t1.5\n".write(toFile: rnk, atomically: true, encoding: .utf8)
        let ranking = try GSEARanking.read(rnk)
        #expect(ranking.genes == ["A", "D", "C"] && ranking.values == [1.5, 1.5, -2])
        let csv = directory.appendingPathComponent("b.csv").path
        try "gene,other,value\n\"X,1\",a,3\nY,b,4\n".write(toFile: csv, atomically: true, encoding: .utf8)
        #expect(try GSEARanking.read(csv).genes == ["Y", "X,1"])
        let twice = directory.appendingPathComponent("c.rnk").path
        try "A\t1\nA\t2\n".write(toFile: twice, atomically: true, encoding: .utf8)
        #expect(throws: AnalysisError("\(twice) line 2: gene 'A' is ranked twice (first on line 1); give each gene once")) { try GSEARanking.read(twice) }
    }
}
