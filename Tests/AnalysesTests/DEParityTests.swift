import Analyses
import Foundation
import Testing

/// Parity with pdex 0.1.28 (standard path), goldens from tools/goldens/de/make_goldens.py.
///
/// Tolerances: on float64 input pdex computes in float64 and we agree to 1e-9 relative (measured
/// ≤ 5e-14: we sum in another order, so not bit for bit). On float32 input pdex keeps every step
/// in float32 (means, ranks, z, t, p, even the FDR: REFERENCE-SEMANTICS §3.2) while we compute in
/// float64 (§8.1). Each float32 step is good to ~6e-8 relative, and a few dozen of them chain, so
/// 1e-4 relative + 1e-6 absolute bounds the difference (measured ≤ 7.3e-5 relative). Two columns
/// subtract nearly equal float32 numbers and lose relative accuracy in proportion:
/// percent_change = (μt − μr)/μr is bounded by 1e-5·(|μt| + |μr|)/|μr|, and the t statistic by
/// 1e-4·(1 + |t|).
@Suite struct DEParityTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        struct Args: Decodable, Sendable {
            let groupby_key: String
            let reference: String
            let groups: [String]?
            let metric: String
            let tie_correct: Bool
            let is_log1p: Bool?
            let exp_post_agg: Bool
            let clip_value: Double?
            let layer: String?
        }
        let `case`: String
        let input: String
        let csv: String?
        let dtype: String
        let raises: String?
        let args: Args
        var testDescription: String { self.case }
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/de")

    static let cases: [Case] = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("cases.json"))
        let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        let list = try! JSONSerialization.data(withJSONObject: object["cases"]!)
        return try! JSONDecoder().decode([Case].self, from: list)
    }()

    static func parameters(_ args: Case.Args) -> DEParameters {
        var p = DEParameters()
        p.groupbyKey = args.groupby_key
        p.reference = args.reference == "rest" ? .rest : .label(args.reference)
        p.groups = args.groups
        p.metric = DEParameters.Metric(rawValue: args.metric)!
        p.continuityCorrection = args.tie_correct
        p.isLog1p = args.is_log1p.map { $0 ? .yes : .no } ?? .auto
        p.expPostAggregation = args.exp_post_agg
        p.clipValue = args.clip_value
        p.layer = args.layer
        return p
    }

    /// The golden CSV as rows keyed by target and feature.
    static func golden(_ name: String) throws -> [[String]] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return text.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// Cases with a pdex (or pdex-mirroring) golden; illico's file is information only.
    @Test(arguments: cases.filter { $0.csv != nil && !$0.case.hasSuffix("-illico") })
    func matchesPdex(_ c: Case) throws {
        let table = try DifferentialExpression.run(path: Self.directory.appendingPathComponent(c.input).path,
                                                   parameters: Self.parameters(c.args), threads: 2)
        let want = try Self.golden(c.csv!)
        #expect(table.rows.count == want.count, "\(c.case): row count")
        let float64 = c.dtype.hasPrefix("float64")
        let relative = float64 ? 1e-9 : 1e-4
        let absolute = float64 ? 1e-12 : 1e-6
        var worst = 0.0
        for (k, (row, expected)) in zip(table.rows, want).enumerated() {
            // Same order as pdex: targets by first appearance, genes in var order.
            #expect([row.target, row.reference, row.feature] == Array(expected[0..<3]), "\(c.case) row \(k)")
            let got = [row.targetMean, row.referenceMean, row.percentChange, row.foldChange, row.pValue, row.statistic, table.fdr[k]]
            for (column, (value, text)) in zip(got, expected[3...]).enumerated() {
                let reference = Double(text) ?? .nan
                if reference.isNaN || value.isNaN {
                    #expect(reference.isNaN && value.isNaN, "\(c.case) \(row.target)/\(row.feature) \(DETable.columns[column + 3]): \(value) vs \(text)")
                    continue
                }
                if reference.isInfinite || value.isInfinite {
                    #expect(reference == value, "\(c.case) \(row.target)/\(row.feature) \(DETable.columns[column + 3])")
                    continue
                }
                let error = abs(value - reference)
                var bound = relative * abs(reference) + absolute
                if !float64 && DETable.columns[column + 3] == "percent_change" {
                    bound = max(bound, 1e-5 * (abs(row.targetMean) + abs(row.referenceMean)) / abs(row.referenceMean))
                }
                if !float64 && DETable.columns[column + 3] == "statistic" && c.args.metric == "t-test" {
                    bound = max(bound, 1e-4 * (1 + abs(reference)))
                }
                if abs(reference) > 1e-12 { worst = max(worst, error / abs(reference)) }
                #expect(error <= bound,
                        "\(c.case) \(row.target)/\(row.feature) \(DETable.columns[column + 3]): \(value) vs \(text)")
            }
        }
        print("DE parity \(c.case): max relative error \(worst)")
    }

    /// Gene windows (forced by a tiny gathering budget) change nothing: same rows, same order.
    @Test func geneWindowsGiveTheSameTable() throws {
        let c = try #require(Self.cases.first { $0.case == "counts_csr_f32_wilcoxon" })
        let path = Self.directory.appendingPathComponent(c.input).path
        let whole = try DifferentialExpression.run(path: path, parameters: Self.parameters(c.args), threads: 2)
        let windowed = try DifferentialExpression.run(path: path, parameters: Self.parameters(c.args), threads: 2, gatherBudget: 4096)
        // Compared as text: NaN fields (percent change at a zero reference mean) are never ==.
        let identical = "\(whole)" == "\(windowed)"
        #expect(identical && whole.rows.count == 288)
    }

    /// Where pdex itself crashes (Anderson-Darling on 1 cell vs 1 cell: scipy IndexError) we give
    /// rows with p = 1 and no statistic instead.
    @Test(arguments: cases.filter { $0.raises != nil })
    func crashesOfTheReferenceBecomeNaNRows(_ c: Case) throws {
        let table = try DifferentialExpression.run(path: Self.directory.appendingPathComponent(c.input).path,
                                                   parameters: Self.parameters(c.args), threads: 1)
        // tiny_n2: target A is 1 cell against 1 reference cell (N = 2); B is 3 cells (N = 4).
        let single = table.rows.filter { $0.target == "A" }
        #expect(single.count == 6)
        #expect(single.allSatisfy { $0.pValue == 1 && $0.statistic.isNaN })
        let computed = table.rows.filter { $0.target == "B" && $0.feature != table.rows.last!.feature }
        #expect(computed.count == 5)
        #expect(computed.allSatisfy { $0.statistic.isFinite || $0.feature == computed[4].feature })
    }
}
