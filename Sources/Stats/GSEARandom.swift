/// The random stream behind gseapy prerank's gene permutations, ported so the null ES values are
/// the same draw for draw (GSEA-SEMANTICS §3.2). gseapy's Rust core seeds
/// `rand::rngs::SmallRng::seed_from_u64(seed)` (xoshiro256++) and reshuffles one index vector
/// `permutation_num` times; which `rand` crate a wheel was built with decides both the seeding and
/// the shuffle, so the version is explicit here rather than guessed.
public enum GSEARandomVersion: Sendable, Hashable, CaseIterable {
    /// rand 0.9.x, in gseapy ≥ 1.1.8 (including 1.3.1): SplitMix64 seeding, forward Fisher–Yates
    /// with `IncreasingUniform` batching and Canon's (biased) range sampling.
    case rand09
    /// rand 0.8.5, in gseapy ≤ 1.1.4: PCG32 seeding, backward Fisher–Yates with Lemire "zone"
    /// rejection.
    case rand08
}

/// `rand::rngs::SmallRng` on a 64-bit target: xoshiro256++ with the seeding of the chosen rand
/// version. Outputs are checked against the §5.3 test vectors.
public struct SmallRng: Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// `SmallRng::seed_from_u64(seed)` as compiled into the gseapy wheel of `version`.
    public init(seed: UInt64, version: GSEARandomVersion) {
        var words: [UInt64]
        switch version {
        case .rand09:
            words = Self.splitMix64Words(seed)
        case .rand08:
            // rand_core 0.6 default `seed_from_u64`: PCG32 outputs fill the 32 seed bytes, read back
            // by `from_seed` as four little-endian u64 words.
            var state = seed
            var halves: [UInt64] = []
            for _ in 0..<8 {
                state = state &* 6_364_136_223_846_793_005 &+ 11_634_580_027_462_260_723
                let xorshifted = UInt32(truncatingIfNeeded: ((state >> 18) ^ state) >> 27)
                let rotation = UInt32(truncatingIfNeeded: state >> 59)
                halves.append(UInt64(xorshifted >> rotation | xorshifted << ((32 &- rotation) & 31)))
            }
            words = (0..<4).map { halves[2 * $0] | halves[2 * $0 + 1] << 32 }
            // xoshiro's `from_seed` refuses the all-zero state by falling back to seed_from_u64(0);
            // PCG32 outputs cannot plausibly all be zero, kept for completeness.
            if words.allSatisfy({ $0 == 0 }) { words = Self.splitMix64Words(0) }
        }
        s0 = words[0]
        s1 = words[1]
        s2 = words[2]
        s3 = words[3]
    }

    private static func splitMix64Words(_ seed: UInt64) -> [UInt64] {
        var x = seed
        return (0..<4).map { _ in
            x = x &+ 0x9e37_79b9_7f4a_7c15
            var z = x
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    /// xoshiro256++ `next_u64`.
    @inline(__always)
    public mutating func nextUInt64() -> UInt64 {
        let result = (s0 &+ s3).rotatedLeft(23) &+ s0
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3.rotatedLeft(45)
        return result
    }

    /// `next_u32`: the upper half of `next_u64` (the low bits of xoshiro have linear dependencies),
    /// the same in both rand versions.
    @inline(__always)
    public mutating func nextUInt32() -> UInt32 {
        UInt32(truncatingIfNeeded: nextUInt64() >> 32)
    }

    /// rand 0.9 `random_range(0..bound)` for u32 without the `unbiased` feature: Canon's method,
    /// one widening multiply plus at most one extra draw to fix the carry.
    @inline(__always)
    mutating func canonRange(_ bound: UInt32) -> UInt32 {
        let m = UInt64(nextUInt32()) * UInt64(bound)
        var high = UInt32(truncatingIfNeeded: m >> 32)
        let low = UInt32(truncatingIfNeeded: m)
        if low > 0 &- bound {
            let high2 = UInt32(truncatingIfNeeded: (UInt64(nextUInt32()) * UInt64(bound)) >> 32)
            if low.addingReportingOverflow(high2).overflow { high &+= 1 }
        }
        return high
    }

    /// rand 0.8.5 `gen_range(0..bound)` for u32: Lemire widening multiply with the conservative
    /// "zone" rejection (`(range << lz) - 1`), redrawing until the low half is inside the zone.
    @inline(__always)
    mutating func lemireZoneRange(_ bound: UInt32) -> UInt32 {
        let zone = (bound << UInt32(bound.leadingZeroBitCount)) &- 1
        while true {
            let m = UInt64(nextUInt32()) * UInt64(bound)
            if UInt32(truncatingIfNeeded: m) <= zone { return UInt32(truncatingIfNeeded: m >> 32) }
        }
    }
}

private extension UInt64 {
    @inline(__always) func rotatedLeft(_ k: UInt64) -> UInt64 { self << k | self >> (64 - k) }
}

/// rand 0.9 `calculate_bound_u32(m)`: the longest product m·(m+1)·… that fits in a u32, and how
/// many factors it has. `IncreasingUniform` draws one number below this bound and peels several
/// shuffle indices out of it, which is why the stream is not one draw per swap.
public func gseaIncreasingUniformBound(_ m: UInt32) -> (bound: UInt32, count: Int) {
    precondition(m > 0)
    var product = m
    var current = m &+ 1
    while true {
        let (p, overflow) = product.multipliedReportingOverflow(by: current)
        if overflow { return (product, Int(current - m)) }
        product = p
        current += 1
    }
}

/// The permutations gseapy shares by all gene sets: `perm_0` is the identity and `perm_j` is a
/// reshuffle of `perm_{j-1}` with one `SmallRng` (GSEA-SEMANTICS §3.2). `current[position]` is the
/// original gene index at that position.
///
/// The stream is cumulative, so permutation j can only be reached by replaying j shuffles (the swap
/// indices do not depend on the contents, but the contents depend on every earlier swap).
/// `fastForward(to:)` does that replay, which costs O(j·N) integer work and no walks: a shard that
/// owns permutations [a, b) fast-forwards to a and then advances, and gets exactly the values of a
/// sequential run.
public struct GenePermutations: Sendable {
    public let version: GSEARandomVersion
    private var rng: SmallRng
    /// The permutation `index`: original gene index at each position.
    public private(set) var current: [Int32]
    /// Which permutation `current` is (0 = identity).
    public private(set) var index: Int

    public init(geneCount: Int, seed: UInt64, version: GSEARandomVersion) {
        precondition(geneCount >= 0 && geneCount < Int(Int32.max))
        self.version = version
        rng = SmallRng(seed: seed, version: version)
        current = (0..<geneCount).map { Int32($0) }
        index = 0
    }

    /// Moves to permutation `index + 1` (one shuffle of the current vector).
    public mutating func advance() {
        switch version {
        case .rand09: Self.shuffle09(&current, &rng)
        case .rand08: Self.shuffle08(&current, &rng)
        }
        index += 1
    }

    /// Replays shuffles up to permutation `target` (≥ `index`; permutations cannot go back).
    public mutating func fastForward(to target: Int) {
        precondition(target >= index, "GenePermutations cannot move backwards (\(index) → \(target))")
        while index < target { advance() }
    }

    /// rand 0.9 `SliceRandom::shuffle` (`partial_shuffle` of the whole slice): forward Fisher–Yates,
    /// swap(i, j) with j uniform in [0, i], the indices taken from `IncreasingUniform` chunks.
    private static func shuffle09(_ v: inout [Int32], _ rng: inout SmallRng) {
        let count = v.count
        if count <= 1 { return }
        v.withUnsafeMutableBufferPointer { buf in
            // IncreasingUniform::new(rng, 0): the first index (from [0, 0]) costs no draw.
            var n: UInt32 = 0
            var chunk: UInt32 = 0
            var chunkRemaining = 1
            for i in 0..<count {
                let nextN = n + 1
                if chunkRemaining == 0 {
                    let (bound, factors) = gseaIncreasingUniformBound(nextN)
                    chunk = rng.canonRange(bound)
                    chunkRemaining = factors
                }
                chunkRemaining -= 1
                let j: UInt32
                if chunkRemaining == 0 {
                    j = chunk
                } else {
                    j = chunk % nextN
                    chunk /= nextN
                }
                n = nextN
                buf.swapAt(i, Int(j))
            }
        }
    }

    /// rand 0.8.5 `SliceRandom::shuffle`: backward Fisher–Yates, swap(i, gen_range(0..i+1)).
    private static func shuffle08(_ v: inout [Int32], _ rng: inout SmallRng) {
        let count = v.count
        if count <= 1 { return }
        v.withUnsafeMutableBufferPointer { buf in
            for i in stride(from: count - 1, through: 1, by: -1) {
                let j = rng.lemireZoneRange(UInt32(i + 1))
                buf.swapAt(i, Int(j))
            }
        }
    }
}
