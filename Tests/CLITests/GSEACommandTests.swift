import Foundation
import Testing

/// `plan gsea` through the built executables: the table is the same whatever the permutation
/// (and DiD) shard count, --from-did and --ranking give the h5ad run's table, and bad input is one
/// line with exit 2.
@Suite struct GSEACommandTests {
    static let trial = CLI.repository.appendingPathComponent("Tests/Fixtures/gsea/trial.h5ad").path
    static let sets = CLI.repository.appendingPathComponent("Tests/Fixtures/gsea/sets.gmt").path

    func temporary(_ name: String = "run") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-gsea-\(name)-\(UUID().uuidString)").path
    }

    func planAndRun(_ arguments: [String], out: String) throws -> Data {
        let planned = try CLI.run(["plan", "gsea"] + arguments + ["--out", out])
        #expect(planned.status == 0, "\(planned.stderr)")
        let ran = try CLI.run(["run", out, "-j", "2"])
        #expect(ran.status == 0, "\(ran.stderr)")
        return (try? Data(contentsOf: URL(fileURLWithPath: out + "/results.csv"))) ?? Data()
    }

    @Test(arguments: [["--permutations", "150"], ["--by-celltype", "--permutations", "60", "--weight", "0"]])
    func resultsDoNotDependOnTheShardCount(_ flags: [String]) throws {
        var tables: [Int: Data] = [:]
        for shards in [1, 3, 17] {
            let out = temporary()
            defer { try? FileManager.default.removeItem(atPath: out) }
            tables[shards] = try planAndRun([Self.trial, "--visits", "V1,V2", "--gene-sets", Self.sets, "--shards", String(shards)] + flags,
                                            out: out)
            let parts = try FileManager.default.contentsOfDirectory(atPath: out + "/parts").filter { $0.hasSuffix(".done") }
            #expect(parts.count == shards, "\(parts.count) permutation shards for --shards \(shards)")
            let didParts = try FileManager.default.contentsOfDirectory(atPath: out + "/did/parts").filter { $0.hasSuffix(".done") }
            #expect(didParts.count == shards, "\(didParts.count) DiD shards for --shards \(shards)")
        }
        let text = String(decoding: tables[1]!, as: UTF8.self)
        #expect(text.hasPrefix(flags.contains("--by-celltype") ? "celltype,Term,ES,NES," : "Term,ES,NES,NOM p-val,FDR q-val,FWER p-val,Tag %,Gene %,Lead_genes\n"))
        #expect(text.split(separator: "\n").count > 10)
        #expect(tables[3] == tables[1], "3 shards differ from 1")
        #expect(tables[17] == tables[1], "17 shards differ from 1")
    }

    /// The DiD run already reduced (--from-did) and its ranking written out (--ranking) give the
    /// table the h5ad run gives.
    @Test func fromDiDAndRankingFileMatchTheWholeRun() throws {
        let whole = temporary("whole"), fromDiD = temporary("from"), ranked = temporary("rank")
        defer { for path in [whole, fromDiD, ranked] { try? FileManager.default.removeItem(atPath: path) } }
        let flags = ["--gene-sets", Self.sets, "--permutations", "120", "--seed", "42"]
        let reference = try planAndRun([Self.trial, "--visits", "V1,V2"] + flags, out: whole)
        #expect(try planAndRun(["--from-did", whole + "/did"] + flags + ["--shards", "2"], out: fromDiD) == reference)
        // The ranking as a .rnk in gseapy's order (value descending, var order within ties).
        let did = try String(contentsOfFile: whole + "/did/results.csv", encoding: .utf8).split(separator: "\n")
        let header = did[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let (feature, beta, p) = (header.firstIndex(of: "feature")!, header.firstIndex(of: "beta_DiD")!, header.firstIndex(of: "p_DiD")!)
        var rows: [(String, Double)] = []
        for line in did.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let b = Double(f[beta]) ?? 0, pv = Double(f[p]) ?? 1
            rows.append((f[feature], (b > 0 ? 1.0 : b < 0 ? -1.0 : 0.0) * -log10(pv + 1e-12)))
        }
        let varOrder = (0..<300).map { $0 < 5 ? String(format: "z%03d", $0) : String(format: "g%03d", $0 - 5) }
        let position = Dictionary(uniqueKeysWithValues: varOrder.enumerated().map { ($1, $0) })
        rows.sort { $0.1 != $1.1 ? $0.1 > $1.1 : position[$0.0]! < position[$1.0]! }
        let rnk = ranked + ".rnk"
        defer { try? FileManager.default.removeItem(atPath: rnk) }
        try rows.map { "\($0.0)\t\($0.1)" }.joined(separator: "\n").write(toFile: rnk, atomically: true, encoding: .utf8)
        #expect(try planAndRun(["--ranking", rnk] + flags, out: ranked) == reference)
    }

    @Test func badInputIsOneLineAndExitTwo() throws {
        let directory = temporary("bad")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tiny = directory + "/tiny.gmt", unknown = directory + "/unknown.gmt", empty = directory + "/empty.rnk"
        try "S1\tna\tg000\tg001\tg002\n".write(toFile: tiny, atomically: true, encoding: .utf8)
        try "S1\tna\tNOPE1\tNOPE2\n".write(toFile: unknown, atomically: true, encoding: .utf8)
        try "gene\tvalue\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let base = ["plan", "gsea", Self.trial, "--visits", "V1,V2", "--out", directory + "/run"]
        let cases: [(arguments: [String], says: String)] = [
            (base + ["--gene-sets", tiny], "no gene set has between --min-size 15 and --max-size 500"),
            (base + ["--gene-sets", unknown], "none of the genes of its 1 gene sets"),
            (base + ["--gene-sets", "KEGG_2021_Human"], "named Enrichr libraries (e.g. KEGG_2021_Human) cannot be downloaded here"),
            (["plan", "gsea", "--ranking", empty, "--gene-sets", Self.sets, "--out", directory + "/run"], "the ranking is empty"),
            (base + ["--gene-sets", Self.sets, "--permutations", "0"], "--permutations must be at least 1"),
        ]
        for (arguments, says) in cases {
            let result = try CLI.run(arguments)
            #expect(result.status == 2, "\(arguments): exit \(result.status)")
            #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").filter { $0.contains("rror") }.count == 1, "\(result.stderr)")
        }
    }
}
