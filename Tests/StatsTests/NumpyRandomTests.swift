import Stats
import Testing

@Suite struct NumpyRandomTests {
    /// Raw PCG64 words and `rng.choice([-1, 1], size=G)` over consecutive calls with odd and even
    /// G (the spare 32-bit half carries over between calls), from numpy 2.4.6: must match exactly.
    @Test func matchesNumpy() {
        for golden in StatsDiDGoldens.shared.signs {
            var raw = NumpyRandom(seed: golden.seed)
            #expect((0..<golden.raw64.count).map { _ in raw.nextUInt64() } == golden.raw64.map { UInt64($0)! },
                    "seed \(golden.seed)")
            var rng = NumpyRandom(seed: golden.seed)
            for (size, expected) in zip(golden.sizes, golden.signs) {
                #expect(rng.signs(count: size).map(Int.init) == expected, "seed \(golden.seed) size \(size)")
            }
        }
    }
}
