import Stats
import Testing

@Suite struct NormalTests {
    /// Reference values: scipy.stats.norm.cdf / norm.sf (scipy 1.17.1), printed with repr().
    /// scipy evaluates through its own ndtr, glibc's erfc differs in the last bits (1.6e-14 relative
    /// at x = 10), far inside the 1e-9 parity goal; 1e-13 relative is asserted.
    @Test func matchesScipy() {
        #expect(Normal.cdf(0) == 0.5)
        #expect(abs(Normal.sf(1.959963984540054) / 0.025 - 1) <= 1e-13)
        #expect(abs(Normal.sf(10) / 7.61985302416047e-24 - 1) <= 1e-13)
        #expect(abs(Normal.cdf(-3) / 0.0013498980316300933 - 1) <= 1e-13)
        #expect(abs(Normal.twoSidedP(-1.959963984540054) / 0.05 - 1) <= 1e-13)
        #expect(Normal.twoSidedP(0) == 1)
        #expect(Normal.twoSidedP(.nan).isNaN)
    }
}
