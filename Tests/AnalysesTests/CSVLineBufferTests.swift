import Testing
@testable import Analyses

/// The reducer formats numbers itself (whole and half numbers directly, repeats from a cache):
/// every byte must be what `CSVText.number` (Swift's `description`) prints.
@Suite struct CSVLineBufferTests {
    static func formatted(_ values: [Double], cached: Bool) -> [String] {
        let line = CSVLineBuffer(capacity: 8)  // tiny: every append grows it at first
        var texts: [String] = []
        for value in values {
            line.removeAll()
            line.number(value, cached: cached)
            texts.append(String(decoding: line.bytes, as: UTF8.self))
        }
        return texts
    }

    @Test func halfAndWholeNumbersPrintAsDescriptionDoes() {
        var values = (-4000...4000).map { Double($0) / 2 }
        values += [-0.0, 0.5, 999_999_999_999_999.5, 999_999_999_999_999, 1e15, 1e15 + 0.5, 1e16, 123_456_789_012_345.5,
                   4_503_599_627_370_495.5, 9_007_199_254_740_992, 0.25, 1.75, -2.5e14, .infinity, -.infinity, .nan]
        var state: UInt64 = 12345
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            values.append(Double(state >> 14) / 2)  // half numbers up to ~5e14
            values.append(Double(state >> 11) / 1024)  // mostly not half numbers
        }
        for cached in [false, true] {
            for (value, text) in zip(values, Self.formatted(values, cached: cached)) where text != CSVText.number(value) {
                Issue.record("\(value.bitPattern): \(text) != \(CSVText.number(value))")
                return
            }
        }
    }

    @Test func cachedRepeatsPrintTheSame() {
        let values: [Double] = (0..<50_000).map { (k: Int) -> Double in
            let base = Double(k % 97) / 7
            return base + 0.001 * Double(k % 5)
        }
        #expect(Self.formatted(values, cached: true) == values.map(CSVText.number))
    }
}
