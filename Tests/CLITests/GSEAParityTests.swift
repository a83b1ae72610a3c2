import Foundation
import Testing

/// Against sctrial 1.0.0 `run_gsea_did` / `run_gsea_did_by_celltype` (gseapy 1.3.1), goldens from
/// tools/goldens/gsea_did/make_goldens.py, two ways:
///
/// - **Exact, through the CLI** (`--ranking` with gseapy's own final ranking, ties in its order):
///   every set, ES, NES, NOM p, FDR q and FWER p equal (1e-12 relative as a safety margin; the
///   engine reproduces gseapy's permutations and operation order), Tag %, Gene %, Lead_genes equal.
/// - **End to end** (`plan gsea` on the h5ad: our DiD → our ranking): the ranking values within
///   1e-9 relative of sctrial's (our DiD agrees to ~1e-12), the gene order identical outside the
///   two tie blocks (five all-zero genes at −0.0, three capped at ±12: gseapy's order there is
///   unspecified, ours is var order), the same terms tested with the same hit counts, and ES to
///   1e-9 for sets with no hit in a tie block. NOM p, FDR and FWER are counts over the null: a
///   1e-14 change of the ranking values flips the sign of a null walk whose maximum and minimum
///   are equal in size (seen on this fixture: one of 200 null ES of a set), so here they agree
///   statistically: |Δp| ≤ 3/√n_perm and NES within 2 %.
@Suite struct GSEAParityTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let `case`: String
        let input: String
        let cli: [String]
        let csv: String
        let ranking: String?
        var testDescription: String { self.case }
    }

    static let directory = CLI.repository.appendingPathComponent("Tests/Fixtures/gsea")

    static let cases: [Case] = {
        struct File: Decodable { let cases: [Case] }
        let data = try! Data(contentsOf: directory.appendingPathComponent("cases.json"))
        return try! JSONDecoder().decode(File.self, from: data).cases
    }()

    /// Rows by column name (results.csv read with the report tests' quote-aware `CSV`).
    static func table(_ text: String) -> [[String: String]] {
        let csv = CSV(text)
        return csv.rows.map { Dictionary(uniqueKeysWithValues: zip(csv.columns, $0)) }
    }

    /// Our run of `flags` on `input` (h5ad path or --ranking file), parsed.
    func ours(_ c: Case, input: [String], flags: [String]) throws -> (table: [[String: String]], did: String?) {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-gsea-parity-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "gsea"] + input + ["--gene-sets", Self.directory.appendingPathComponent("sets.gmt").path,
                                                          "--out", run, "--shards", "3"] + flags)
        #expect(plan.status == 0, "\(plan.stderr)")
        let ran = try CLI.run(["run", run])
        #expect(ran.status == 0, "\(ran.stderr)")
        return (Self.table((try? String(contentsOfFile: run + "/results.csv", encoding: .utf8)) ?? ""),
                try? String(contentsOfFile: run + "/did/results.csv", encoding: .utf8))
    }

    /// Our DiD's ranking (sctrial's rule applied to RUN/did/results.csv) against gseapy's final
    /// ranking: values within 1e-9 relative, order identical outside the tie blocks.
    func checkRanking(_ did: String, golden: String, flags: [String]) throws {
        let rows = Self.table(did)
        let rankBy = flags.firstIndex(of: "--rank-by").map { flags[$0 + 1] } ?? "signed-logp"
        var values: [String: Double] = [:]
        for row in rows where Double(row["n_units"]!)! >= 4 {
            let beta = Double(row["beta_DiD"]!) ?? 0, p = Double(row["p_DiD"]!) ?? 1, se = Double(row["se_DiD"]!) ?? 1
            switch rankBy {
            case "tstat": values[row["feature"]!] = beta / (se + 1e-12)
            case "beta": values[row["feature"]!] = beta
            default: values[row["feature"]!] = (beta > 0 ? 1.0 : beta < 0 ? -1.0 : 0.0) * -log10(p + 1e-12)
            }
        }
        let expected = Self.table(try String(contentsOf: Self.directory.appendingPathComponent(golden), encoding: .utf8))
        #expect(expected.count == values.count, "ranked genes")
        let goldenValues = expected.map { Double($0["value"]!)! }
        let tied = Set(goldenValues.filter { v in goldenValues.filter { $0 == v }.count > 1 })
        for (row, value) in zip(expected, goldenValues) {
            let ours = values[row["gene"]!] ?? .nan
            #expect(abs(ours - value) <= 1e-9 * max(abs(value), 1e-3), "\(row["gene"]!): rank \(ours) vs \(value)")
        }
        // Order outside tie blocks: sorting by the golden values keeps gseapy's order there.
        let ourOrder = values.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
            .filter { !tied.contains(values[$0]!) }
        #expect(ourOrder == expected.filter { !tied.contains(Double($0["value"]!)!) }.map { $0["gene"]! }, "gene order outside ties")
    }

    @Test(arguments: cases.filter { $0.ranking != nil })
    func gseapysOwnRankingGivesItsTableExactly(_ c: Case) throws {
        // Flags that shape the ranking do not apply to a ranking file.
        var flags: [String] = []
        var index = 0
        while index < c.cli.count {
            if ["--rank-by", "--min-units"].contains(c.cli[index]) { index += 2; continue }
            flags.append(c.cli[index])
            index += 1
        }
        let ours = try ours(c, input: ["--ranking", Self.directory.appendingPathComponent(c.ranking!).path], flags: flags).table
        let golden = Self.table(try String(contentsOf: Self.directory.appendingPathComponent(c.csv), encoding: .utf8))
        #expect(ours.map { $0["Term"]! } .sorted() == golden.map { $0["Term"]! }.sorted())
        let byTerm = Dictionary(uniqueKeysWithValues: ours.map { ($0["Term"]!, $0) })
        var worst = 0.0
        for expected in golden {
            guard let row = byTerm[expected["Term"]!] else { continue }
            for column in ["ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val"] {
                let a = Double(row[column]!)!, b = Double(expected[column]!)!
                let difference = a == b ? 0 : abs(a - b) / max(abs(b), 1e-300)
                worst = max(worst, difference)
                #expect(difference <= 1e-12, "\(c.case) \(expected["Term"]!) \(column): \(a) vs \(b)")
            }
            for column in ["Tag %", "Gene %", "Lead_genes"] {
                #expect(row[column] == expected[column], "\(c.case) \(expected["Term"]!) \(column)")
            }
        }
        print("GSEA exact parity \(c.case): \(golden.count) sets, worst relative difference \(worst)")
    }

    @Test(arguments: cases)
    func matchesRunGseaDid(_ c: Case) throws {
        let (ours, did) = try ours(c, input: [Self.directory.appendingPathComponent(c.input).path, "--visits", "V1,V2"], flags: c.cli)
        if let ranking = c.ranking, !c.cli.contains("--by-celltype") { try checkRanking(did ?? "", golden: ranking, flags: c.cli) }
        let golden = Self.table(try String(contentsOf: Self.directory.appendingPathComponent(c.csv), encoding: .utf8))
        let key = { (row: [String: String]) in (row["celltype"] ?? "") + "/" + row["Term"]! }
        #expect(Set(ours.map(key)) == Set(golden.map(key)), "\(c.case): tested terms")
        #expect(ours.count == golden.count)
        // Genes inside tie blocks: the all-zero genes (rank −0.0) and the capped ones (±12).
        let tied: Set<String> = ["z000", "z001", "z002", "z003", "z004", "g000", "g001", "g002"]
        let sets = Dictionary(uniqueKeysWithValues: try String(contentsOf: Self.directory.appendingPathComponent("sets.gmt"), encoding: .utf8)
            .split(separator: "\n").map { line -> (String, Set<String>) in
                let f = line.split(separator: "\t").map(String.init)
                return (f[0], Set(f.dropFirst(2)))
            })
        let byKey = Dictionary(uniqueKeysWithValues: ours.map { (key($0), $0) })
        var exact = 0, worstES = 0.0
        for expected in golden {
            guard let row = byKey[key(expected)] else { continue }
            let term = expected["Term"]!
            let denominator = { (tag: String) in tag.split(separator: "/").last.map(String.init) }
            #expect(denominator(row["Tag %"]!) == denominator(expected["Tag %"]!), "\(c.case) \(term): hit count")
            guard sets[term]!.isDisjoint(with: tied) else { continue }
            exact += 1
            for (column, tolerance) in [("ES", 1e-9), ("NES", 0.02)] {
                let a = Double(row[column]!)!, b = Double(expected[column]!)!
                let difference = abs(a - b) / max(abs(b), 1e-300)
                if column == "ES" { worstES = max(worstES, difference) }
                #expect(difference <= tolerance, "\(c.case) \(term) \(column): \(a) vs \(b)")
            }
            let permutations = Double(c.cli[c.cli.firstIndex(of: "--permutations")! + 1])!
            for column in ["NOM p-val", "FDR q-val", "FWER p-val"] {
                let a = Double(row[column]!)!, b = Double(expected[column]!)!
                #expect(abs(a - b) <= 3 / permutations.squareRoot(), "\(c.case) \(term) \(column): \(a) vs \(b)")
            }
            #expect(row["Tag %"] == expected["Tag %"], "\(c.case) \(term) Tag %")
            #expect(Set(row["Lead_genes"]!.split(separator: ";")) == Set(expected["Lead_genes"]!.split(separator: ";")),
                    "\(c.case) \(term) Lead_genes")
        }
        #expect(exact >= golden.count / 2, "\(c.case): only \(exact) of \(golden.count) sets compared exactly")
        print("GSEA parity \(c.case): \(exact)/\(golden.count) sets exact, worst ES relative difference \(worstES)")
    }
}
