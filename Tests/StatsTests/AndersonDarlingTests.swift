import Stats
import Testing

@Suite struct AndersonDarlingTests {
    /// Every operation follows scipy's order and the sums reproduce numpy's pairwise summation, so
    /// the statistic is expected bit for bit (measured: identical on all goldens); p adds one exp()
    /// from the platform libm: 1e-12 relative leaves room for another libm or LAPACK's last bit in
    /// the polyfit coefficients.
    static let tolerance = 1e-12

    @Test func matchesScipyGoldens() throws {
        let cases = DEGoldens.shared.andersonKsamp
        #expect(cases.count > 40)
        for c in cases {
            let target = try SortedSample(c.x, zeroCount: c.xZeros)
            let reference = try SortedSample(c.y, zeroCount: c.yZeros)
            switch c.error {
            case nil:
                let r = try AndersonDarling.test(target, reference)
                #expect(DEGoldens.relativeError(r.statistic, c.statistic!) <= Self.tolerance,
                        "\(c.name): A2 \(r.statistic) vs \(c.statistic!)")
                #expect(DEGoldens.relativeError(r.pValue, c.pvalue!) <= Self.tolerance,
                        "\(c.name): p \(r.pValue) vs \(c.pvalue!)")
            case "IndexError":
                #expect(throws: AndersonDarlingError.tooFewObservations, "\(c.name)") {
                    try AndersonDarling.test(target, reference)
                }
            default:
                #expect(c.error == "ValueError")
                #expect(throws: AndersonDarlingError.self, "\(c.name)") {
                    try AndersonDarling.test(target, reference)
                }
            }
        }
    }

    /// The goldens cover all three branches of scipy's p-value rule: the 0.25 cap, the 0.001
    /// floor, and the interpolation between them (an A2 sweep across both edges).
    @Test func goldensCoverEveryPValueBranch() {
        let ps = DEGoldens.shared.andersonKsamp.compactMap(\.pvalue).filter { !$0.isNaN }
        #expect(ps.contains(0.25) && ps.contains(0.001))
        #expect(ps.filter { $0 != 0.25 && $0 != 0.001 }.count >= 10)
        #expect(DEGoldens.shared.meta.scipy == "1.17.1")
    }

    /// A precomputed standardization gives the same bits as the one built per call.
    @Test func reusedStandardizationIsIdentical() throws {
        let x = try SortedSample([0.5, 1.5, 2.5, 7], zeroCount: 10)
        let y = try SortedSample([1, 2, 3, 4, 5, 6], zeroCount: 30)
        let constants = try AndersonDarling.Standardization(totalCount: x.count + y.count)
        #expect(try AndersonDarling.test(x, y, standardization: constants) == AndersonDarling.test(x, y))
    }

    @Test func refusesNaN() throws {
        let x = SortedSample([1, .nan, 2]), y = SortedSample([3, 4])
        #expect(throws: AndersonDarlingError.nanValue) { try AndersonDarling.test(x, y) }
    }
}
