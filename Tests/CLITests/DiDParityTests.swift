import Foundation
import Testing

/// Parity with sctrial 1.0.0 (`did_table`, `did_table_by_celltype`), end to end through
/// `plan did` + `run` with each case's exact flags; goldens from tools/goldens/did/make_goldens.py.
///
/// Tolerances: float64 input 1e-9 relative (+1e-12 absolute for values near 0); we solve the same
/// model by the within transformation (REFERENCE-SEMANTICS §1.8), measured ≤ 2e-12. float32 input:
/// sctrial aggregates with float32 Kahan sums (§1.5) while we sum in float64 (§8.1); re-running
/// sctrial on the same values in float64 moved beta by ≤ 6e-5 relative (3.2e-7 absolute), se by
/// 3.5e-7 and p by 1.2e-5, so 1e-4 relative + 1e-6 absolute.
@Suite struct DiDParityTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let `case`: String
        let input: String
        let cli: [String]
        let dtype: String
        let csv: String?
        let raises: String?
        let generated_by: String?
        /// Cells where we deliberately differ from sctrial (`ours` is what we write instead).
        let deliberate: [Deliberate]?
        struct Deliberate: Decodable, Sendable {
            let feature: String
            let column: String
            let ours: String
            let why: String
        }
        var testDescription: String { self.case }
    }

    static let directory = CLI.repository.appendingPathComponent("Tests/Fixtures/did")

    static let cases: [Case] = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("cases.json"))
        let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        return try! JSONDecoder().decode([Case].self, from: JSONSerialization.data(withJSONObject: object["cases"]!))
    }()


    func run(_ c: Case) throws -> (status: Int32, csv: String, stderr: String) {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-did-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: run) }
        // Relative paths in the flags (sets.gmt) are the fixture folder's.
        let flags = c.cli.map { $0.hasSuffix(".gmt") ? Self.directory.appendingPathComponent($0).path : $0 }
        let plan = try CLI.run(["plan", "did", Self.directory.appendingPathComponent(c.input).path, "--out", run] + flags)
        guard plan.status == 0 else { return (plan.status, "", plan.stderr) }
        let result = try CLI.run(["run", run])
        let csv = (try? String(contentsOfFile: run + "/results.csv", encoding: .utf8)) ?? ""
        return (result.status, csv, result.stderr)
    }

    static func rows(_ text: String) -> (header: [String], rows: [[String]]) {
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        return (lines.first ?? [], Array(lines.dropFirst()))
    }

    @Test(arguments: cases.filter { $0.csv != nil })
    func matchesSctrial(_ c: Case) throws {
        let ours = try run(c)
        #expect(ours.status == 0, "\(ours.stderr)")
        let (header, rows) = Self.rows(ours.csv)
        let golden = Self.rows(try String(contentsOf: Self.directory.appendingPathComponent(c.csv!), encoding: .utf8))
        #expect(header == golden.header + ["reason"], "\(c.case) columns")
        #expect(rows.count == golden.rows.count, "\(c.case) rows")
        let float64 = c.dtype.hasPrefix("float64")
        let (relative, absolute) = float64 ? (1e-9, 1e-12) : (1e-4, 1e-6)
        let keyColumns = ["feature", "celltype"].compactMap { golden.header.firstIndex(of: $0) }
        func key(_ row: [String]) -> String { keyColumns.map { row[$0] }.joined(separator: "|") }
        let ourRows = Dictionary(rows.map { (key($0), $0) }, uniquingKeysWith: { a, _ in a })
        var worst = 0.0
        for want in golden.rows {
            guard let got = ourRows[key(want)] else { Issue.record("\(c.case): missing \(key(want))"); continue }
            for (column, name) in golden.header.enumerated() {
                let (a, b) = (got[column], want[column])
                if let different = c.deliberate?.first(where: { $0.feature == want[golden.header.firstIndex(of: "feature")!] && $0.column == name }) {
                    // e.g. a p-value statsmodels computes from a roundoff standard error: NaN, said in `reason`.
                    #expect(different.ours == "nan" && a.isEmpty && !b.isEmpty, "\(c.case) \(key(want)) \(name): '\(a)' (\(different.why))")
                    let reason = got[try #require(header.firstIndex(of: "reason"))]
                    #expect(reason.contains("\(name) NaN") && reason.contains("roundoff"), "\(c.case) \(key(want)) reason '\(reason)'")
                    continue
                }
                if let x = Double(a), let y = Double(b) {
                    let error = abs(x - y)
                    if abs(y) > 1e-12 { worst = max(worst, error / abs(y)) }
                    #expect(error <= relative * abs(y) + absolute || (x.isNaN && y.isNaN), "\(c.case) \(key(want)) \(name): \(a) vs \(b)")
                } else {
                    #expect(a == b, "\(c.case) \(key(want)) \(name): '\(a)' vs '\(b)'")
                }
            }
        }
        // Rows are sorted by p_DiD within each block (stably; sctrial's order among ties is arbitrary).
        if let p = header.firstIndex(of: "p_DiD"), !header.contains("celltype") {
            let values = rows.map { Double($0[p]) ?? .infinity }
            #expect(zip(values, values.dropFirst()).allSatisfy { $0 <= $1 }, "\(c.case) sorted")
        }
        print("DiD parity \(c.case): max relative error \(worst)")
    }

    /// Where statsmodels divides by zero (N = K) and sctrial aborts, we give NaN rows with a reason.
    @Test(arguments: cases.filter { $0.raises?.hasPrefix("ZeroDivisionError") == true })
    func saturatedDesignsBecomeNaNRows(_ c: Case) throws {
        let ours = try run(c)
        #expect(ours.status == 0, "\(ours.stderr)")
        let (header, rows) = Self.rows(ours.csv)
        let reason = try #require(header.firstIndex(of: "reason"))
        #expect(rows.contains { $0[reason].contains("N = K") }, "\(c.case)")
    }
}
