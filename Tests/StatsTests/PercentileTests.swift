import Stats
import Testing

@Suite struct PercentileTests {
    /// np.quantile(v, q) for n = 1…998 with ties, and did_fit's bootstrap-t bounds
    /// np.percentile(v, 100·alpha/2) / np.percentile(v, 100·(1 − alpha/2)) with alpha = 1 − 0.95:
    /// same arithmetic as numpy, so equal to the bit.
    @Test func matchesNumpy() {
        let alpha = 1.0 - 0.95
        for golden in StatsDiDGoldens.shared.percentiles {
            for (q, expected) in zip(golden.q, golden.expected) {
                #expect(Percentile.linear(golden.values, q) == expected, "n \(golden.values.count) q \(q)")
            }
            #expect(Percentile.linear(golden.values, 100 * alpha / 2 / 100) == golden.bootstrapBounds[0])
            #expect(Percentile.linear(golden.values, 100 * (1 - alpha / 2) / 100) == golden.bootstrapBounds[1])
        }
        #expect(Percentile.linear([], 0.5).isNaN)
    }
}

extension PercentileTests {
    /// The selection path against plain sorting on heavily tied data, every virtual index kind.
    @Test func selectionAgreesWithSorting() {
        var rng = NumpyRandom(seed: 11)
        for n in [1, 2, 3, 4, 5, 17, 64, 199, 999] {
            let values = (0..<n).map { _ in Double(rng.nextUInt64() % 7) - 3 + (rng.nextUInt64() % 3 == 0 ? 0.25 : 0) }
            let sorted = values.sorted()
            for q in [0, 0.01, 0.025000000000000022, 0.3, 0.5, 0.77, 0.975, 0.999, 1] {
                let h = Double(n - 1) * q
                let i = min(Int(h.rounded(.down)), n - 1)
                let f = h - h.rounded(.down)
                let a = sorted[i], b = sorted[min(i + 1, n - 1)]
                let expected = f >= 0.5 ? b - (b - a) * (1 - f) : a + (b - a) * f
                #expect(Percentile.linear(values, q) == expected, "n \(n) q \(q)")
            }
        }
    }
}
