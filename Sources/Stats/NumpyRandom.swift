/// Bit-exact port of `numpy.random.default_rng(seed)` (SeedSequence → PCG64) for the one draw
/// sctrial's wild cluster bootstrap makes, `rng.choice([-1, 1], size: G)`, so bootstrap p-values
/// can be compared draw for draw with the reference (REFERENCE-SEMANTICS §1.12).
///
/// 128-bit arithmetic is done on two 64-bit halves because `UInt128` is unavailable on the
/// package's oldest macOS target.
public struct NumpyRandom: Sendable {
    private var stateHigh: UInt64
    private var stateLow: UInt64
    private let incrementHigh: UInt64
    private let incrementLow: UInt64
    /// numpy keeps the unused high half of a 64-bit output for the next 32-bit request,
    /// across calls; an odd `count` therefore shares a word between consecutive draws.
    private var spare: UInt32?

    private static let multiplierHigh: UInt64 = 0x2360_ed05_1fc6_5da4
    private static let multiplierLow: UInt64 = 0x4385_df64_9fcc_f645

    /// Same stream as `numpy.random.default_rng(seed)`.
    public init(seed: UInt64) {
        let words = Self.seedSequenceState(entropy: Self.entropyWords(seed), count: 8)
        let w = (0..<4).map { UInt64(words[2 * $0]) | UInt64(words[2 * $0 + 1]) << 32 }
        // PCG64 set_seed: initstate = w0:w1, initseq = w2:w3, inc = initseq << 1 | 1.
        incrementHigh = w[2] << 1 | w[3] >> 63
        incrementLow = w[3] << 1 | 1
        stateHigh = 0
        stateLow = 0
        step()
        let (low, carry) = stateLow.addingReportingOverflow(w[1])
        stateLow = low
        stateHigh = stateHigh &+ w[0] &+ (carry ? 1 : 0)
        step()
    }

    /// `bit_generator.random_raw()`: one PCG64 XSL-RR output.
    public mutating func nextUInt64() -> UInt64 {
        step()
        let rotation = stateHigh >> 58
        let x = stateHigh ^ stateLow
        return x >> rotation | x << ((64 - rotation) & 63)
    }

    /// numpy's `next_uint32`: low half of a fresh 64-bit output first, the high half on the next call.
    public mutating func nextUInt32() -> UInt32 {
        if let half = spare {
            spare = nil
            return half
        }
        let word = nextUInt64()
        spare = UInt32(truncatingIfNeeded: word >> 32)
        return UInt32(truncatingIfNeeded: word)
    }

    /// `rng.choice([-1, 1], size: count)`: numpy draws indices in [0, 1] with Lemire's bounded
    /// method on 32-bit outputs, which for a range of 2 reduces to bit 31 (never rejects).
    public mutating func signs(count: Int) -> [Int8] {
        (0..<count).map { _ in nextUInt32() & 0x8000_0000 != 0 ? 1 : -1 }
    }

    /// state = state · M + inc (mod 2^128).
    private mutating func step() {
        let (productHigh, productLow) = stateLow.multipliedFullWidth(by: Self.multiplierLow)
        let high = productHigh &+ stateHigh &* Self.multiplierLow &+ stateLow &* Self.multiplierHigh
        let (low, carry) = productLow.addingReportingOverflow(incrementLow)
        stateLow = low
        stateHigh = high &+ incrementHigh &+ (carry ? 1 : 0)
    }

    /// A Python int seed as SeedSequence sees it: 32-bit little-endian words, `[0]` for 0.
    private static func entropyWords(_ seed: UInt64) -> [UInt32] {
        seed >> 32 == 0 ? [UInt32(seed)] : [UInt32(truncatingIfNeeded: seed), UInt32(seed >> 32)]
    }

    /// `SeedSequence(entropy).generate_state(count, uint32)` (pool size 4, no spawn key).
    private static func seedSequenceState(entropy: [UInt32], count: Int) -> [UInt32] {
        var hashConstant: UInt32 = 0x43b0_d7e5
        func hashmix(_ value: UInt32) -> UInt32 {
            var v = value ^ hashConstant
            hashConstant = hashConstant &* 0x931e_8875
            v = v &* hashConstant
            return v ^ v >> 16
        }
        func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
            let r = 0xca01_f9dd &* x &- 0x4973_f715 &* y
            return r ^ r >> 16
        }
        var pool = (0..<4).map { hashmix($0 < entropy.count ? entropy[$0] : 0) }
        for source in 0..<4 {
            for destination in 0..<4 where destination != source {
                pool[destination] = mix(pool[destination], hashmix(pool[source]))
            }
        }
        for word in entropy.dropFirst(4) {
            for destination in 0..<4 { pool[destination] = mix(pool[destination], hashmix(word)) }
        }
        var outputConstant: UInt32 = 0x8b51_f9dd
        return (0..<count).map { i in
            var v = pool[i % 4] ^ outputConstant
            outputConstant = outputConstant &* 0x58f3_8ded
            v = v &* outputConstant
            return v ^ v >> 16
        }
    }
}
