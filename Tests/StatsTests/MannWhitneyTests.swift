import Foundation
import Stats
import Testing

/// Goldens for the perturbation-DE numerics, written by tools/goldens/stats_de/make_goldens.py
/// from the real scipy 1.17.1 / statsmodels 0.15.0 (regenerate with regenerate.sh there). Shared by
/// the MannWhitney, AndersonDarling, StudentT and BenjaminiHochberg tests. Non-finite values are
/// stored as the strings "NaN", "Infinity", "-Infinity".
struct DEGoldens: Decodable, Sendable {
    struct Meta: Decodable, Sendable {
        let scipy: String
        let statsmodels: String
    }

    /// A sample is its explicit values plus a count of implicit zeros (materialised for scipy).
    struct MannWhitneyCase: Decodable, Sendable {
        let name: String
        let x: [Double], xZeros: Int, y: [Double], yZeros: Int
        let continuity: Bool, exact: Bool
        let statistic: Double, pvalue: Double
    }

    struct AndersonCase: Decodable, Sendable {
        let name: String
        let x: [Double], xZeros: Int, y: [Double], yZeros: Int
        let statistic: Double?, pvalue: Double?
        /// The Python exception scipy raised, if any.
        let error: String?
    }

    struct TTestCase: Decodable, Sendable {
        let name: String
        let x: [Double], y: [Double]
        let statistic: Double, pvalue: Double, df: Double
    }

    struct StdtrCase: Decodable, Sendable {
        let df: Double, t: Double, cdf: Double
    }

    /// Adjusted p-values, or the name of the exception the reference raised.
    enum Outcome: Decodable, Sendable {
        case values([Double])
        case error(String)

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let values = try? container.decode([Double].self) {
                self = .values(values)
            } else {
                self = .error(try container.decode(String.self))
            }
        }
    }

    struct BHCase: Decodable, Sendable {
        let name: String
        let p: [Double]
        let statsmodels: Outcome, scipy: Outcome
    }

    let meta: Meta
    let mannwhitneyu: [MannWhitneyCase]
    let andersonKsamp: [AndersonCase]
    let ttestInd: [TTestCase]
    let stdtr: [StdtrCase]
    let bh: [BHCase]

    static let shared: DEGoldens = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Goldens/de_goldens.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(DEGoldens.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot read \(url.path): \(error)")
        }
    }()

    /// |actual/expected − 1|, 0 when both are equal (infinities, zeros) or both NaN; ∞ when only
    /// one is NaN.
    static func relativeError(_ actual: Double, _ expected: Double) -> Double {
        if actual == expected || (actual.isNaN && expected.isNaN) { return 0 }
        if actual.isNaN || expected.isNaN || expected == 0 { return .infinity }
        return abs(actual / expected - 1)
    }
}

@Suite struct MannWhitneyTests {
    /// Tolerances. U1 is a sum of half-integer ranks, exact in float64 in both implementations
    /// (asserted equal). Exact p-values follow scipy's own float recurrence; only the summation
    /// order of its BLAS dot product differs (measured: 213 of 216 bit-identical, max 4.4e-16):
    /// 1e-14. Asymptotic p-values share z bit for bit, then Normal.cdf divides by √2 where scipy's
    /// ndtr multiplies by √½ and uses cephes' erfc instead of glibc's; in the far tail the ulp
    /// this moves the argument is amplified ~z² (measured max 1.1e-13 at p ≈ 1e-99, ≤ 1e-15 for
    /// p > 1e-10): 1e-12.
    static let exactTolerance = 1e-14
    static let asymptoticTolerance = 1e-12

    @Test func matchesScipyGoldens() throws {
        let cases = DEGoldens.shared.mannwhitneyu
        #expect(cases.count > 200)
        var exactNull = MannWhitneyExactNull()
        var exactCount = 0
        for c in cases {
            let target = try SortedSample(c.x, zeroCount: c.xZeros)
            let reference = try SortedSample(c.y, zeroCount: c.yZeros)
            let r = MannWhitney.test(target, reference, useContinuity: c.continuity, exactNull: &exactNull)
            #expect(DEGoldens.relativeError(r.statistic, c.statistic) == 0, "\(c.name): U1 \(r.statistic) vs \(c.statistic)")
            let tolerance = c.exact ? Self.exactTolerance : Self.asymptoticTolerance
            let error = DEGoldens.relativeError(r.pValue, c.pvalue)
            #expect(error <= tolerance, "\(c.name) continuity=\(c.continuity): p \(r.pValue) vs \(c.pvalue)")
            if !r.statistic.isNaN { #expect(r.isExact == c.exact, "\(c.name): method") }
            if c.exact { exactCount += 1 }
        }
        #expect(exactCount > 100)
    }

    /// The same exact distribution answered by a cache that grew in another order, or by a fresh
    /// one, gives identical bits: memoisation never changes a result.
    @Test func exactCacheIsOrderIndependent() throws {
        let reference = SortedSample((0..<400).map { Double($0) })
        let targets = [[-3.5, 10.5, 20.5, 399.5], [150.5, 170.5, 180.5, 250.5], [50.5, 60.5, 70.5, 80.5]]
        var shared = MannWhitneyExactNull()
        for target in targets.reversed() {
            _ = MannWhitney.test(SortedSample(target), reference, exactNull: &shared)
        }
        for target in targets {
            var fresh = MannWhitneyExactNull()
            let a = MannWhitney.test(SortedSample(target), reference, exactNull: &fresh)
            let b = MannWhitney.test(SortedSample(target), reference, exactNull: &shared)
            #expect(a.isExact && a == b)
        }
    }

    /// Implicit zeros are the same tie block as explicit ones, wherever they are given.
    @Test func sparseZerosEqualDenseZeros() throws {
        let x = [0, 3, 0, 1, 2, 0, 5, 1] as [Double]
        let y = [1, 0, 0, 0, 2, 2, 7, 0, 0, 1, 4, 0] as [Double]
        let dense = MannWhitney.test(x, y)
        let xs = try SortedSample(x.filter { $0 != 0 }, zeroCount: 3)
        let ys = try SortedSample([0, 1, 2, 2, 7, 1, 4], zeroCount: 5)  // one zero explicit
        var cache = MannWhitneyExactNull()
        #expect(MannWhitney.test(xs, ys, exactNull: &cache) == dense)
        #expect(!dense.isExact)
    }

    /// Swapping the samples turns U1 into n1·n2 − U1 and keeps the two-sided p-value.
    @Test func swappingSamplesMirrorsU() {
        let x = [0.3, 1.7, 2.2, 5.1, 0.9], y = [1.1, 2.5, 3.3, 4.4, 6.6, 7.0, 0.1]
        for continuity in [true, false] {
            let a = MannWhitney.test(x, y, useContinuity: continuity)
            let b = MannWhitney.test(y, x, useContinuity: continuity)
            #expect(a.statistic + b.statistic == 35)
            #expect(a.pValue == b.pValue)
        }
    }

    @Test func rejectsNegativeZeroCount() {
        #expect(throws: RankSampleError.negativeZeroCount(-1)) { try SortedSample([1], zeroCount: -1) }
    }

    @Test func nanAndEmptyGiveNaN() throws {
        let withNaN = SortedSample([1, .nan, 3])
        #expect(withNaN.nanCount == 1 && withNaN.count == 3 && withNaN.values == [1, 3])
        #expect(MannWhitney.test([1, .nan], [2, 3]).pValue.isNaN)
        #expect(MannWhitney.test([], [2, 3]).statistic.isNaN)
    }
}
