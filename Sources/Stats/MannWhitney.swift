import Foundation

/// Why a sample cannot be prepared for a rank test.
public enum RankSampleError: Error, Equatable, Sendable {
    /// The count of implicit zeros was negative.
    case negativeZeroCount(Int)
}

/// A sample prepared once for rank tests: its explicit values sorted, plus a count of implicit
/// zeros. Sparse data keeps its zeros implicit; they form one tie block (merged with any explicit
/// zeros) and are never materialised, so ranking a target against a reference costs time in the
/// explicit values only. The tests read it through a `SortedSpan`.
public struct SortedSample: Sendable {
    /// Explicit values, ascending, NaN removed (see `nanCount`). May contain zeros and negatives.
    public let values: [Double]
    /// Implicit zeros.
    public let zeroCount: Int
    /// NaNs that were in the input; a test involving them returns NaN, as scipy's
    /// `nan_policy="propagate"` does.
    public let nanCount: Int
    let ties: SortedSpan.TieStructure

    /// Sample size: explicit values, implicit zeros and NaNs.
    public var count: Int { values.count + zeroCount + nanCount }

    /// A dense sample: sorts `values` (O(n log n), once) and records the tie structure.
    public init(_ values: consuming [Double]) {
        self.init(sorting: values, zeroCount: 0)
    }

    /// A sparse sample: the explicit `values` plus `zeroCount` implicit zeros.
    public init(_ values: consuming [Double], zeroCount: Int) throws(RankSampleError) {
        guard zeroCount >= 0 else { throw .negativeZeroCount(zeroCount) }
        self.init(sorting: values, zeroCount: zeroCount)
    }

    private init(sorting values: consuming [Double], zeroCount: Int) {
        var sorted = values
        let withNaN = sorted.count
        sorted.removeAll { $0.isNaN }
        sorted.sort()
        self.nanCount = withNaN - sorted.count
        self.zeroCount = zeroCount
        self.ties = sorted.withUnsafeBufferPointer { SortedSpan.TieStructure($0, zeroCount: zeroCount) }
        self.values = sorted
    }

    /// The sample as a span over its own storage, for the duration of `body`.
    public func withSpan<R, E: Error>(_ body: (SortedSpan) throws(E) -> R) throws(E) -> R {
        try values.withUnsafeBufferPointer { (buffer) throws(E) -> R in
            try body(SortedSpan(values: buffer, zeroCount: zeroCount, nanCount: nanCount, ties: ties))
        }
    }
}

/// A sorted sample in borrowed storage (what `SortedSample` holds, without owning an array): lets
/// a caller testing many groups sort each group in place in one scratch buffer instead of
/// allocating per group. The storage must outlive the span and stay unchanged.
public struct SortedSpan {
    /// Explicit values, ascending, without NaN.
    public let values: UnsafeBufferPointer<Double>
    public let zeroCount: Int
    public let nanCount: Int
    let ties: TieStructure

    /// Sample size: explicit values, implicit zeros and NaNs.
    public var count: Int { values.count + zeroCount + nanCount }

    init(values: UnsafeBufferPointer<Double>, zeroCount: Int, nanCount: Int, ties: TieStructure) {
        self.values = values
        self.zeroCount = zeroCount
        self.nanCount = nanCount
        self.ties = ties
    }

    /// Sorts `buffer` in place, NaNs moved past the end of the span (and counted), and records
    /// the tie structure. `zeroCount` must not be negative.
    public init(sortingInPlace buffer: UnsafeMutableBufferPointer<Double>, zeroCount: Int) {
        precondition(zeroCount >= 0, "a sample cannot have a negative count of zeros")
        var kept = buffer.count
        var i = 0
        while i < kept {
            if buffer[i].isNaN {
                kept -= 1
                buffer.swapAt(i, kept)
            } else {
                i += 1
            }
        }
        let sorted = UnsafeMutableBufferPointer(rebasing: buffer[..<kept])
        Self.sort(sorted)
        let values = UnsafeBufferPointer(sorted)
        self.init(values: values, zeroCount: zeroCount, nanCount: buffer.count - kept,
                  ties: TieStructure(values, zeroCount: zeroCount))
    }

    /// Sorts ascending in place (no NaN): quicksort with insertion sort for short ranges, which
    /// beats the library's merge sort (and its buffer) on the many small groups a DE run sorts;
    /// past a recursion depth of 2·log₂(n) the library sort takes over, bounding the worst case.
    static func sort(_ values: UnsafeMutableBufferPointer<Double>) {
        var depth = 2 * (Int.bitWidth - values.count.leadingZeroBitCount)
        var range = values
        while range.count > 24 {
            if depth == 0 {
                range.sort()
                return
            }
            depth -= 1
            // Hoare partition around the median of three: equal values split evenly.
            let last = range.count - 1
            let a = range[0], b = range[last / 2], c = range[last]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = -1, j = range.count
            while true {
                repeat { i += 1 } while range[i] < pivot
                repeat { j -= 1 } while range[j] > pivot
                if i >= j { break }
                range.swapAt(i, j)
            }
            let left = UnsafeMutableBufferPointer(rebasing: range[...j])
            let right = UnsafeMutableBufferPointer(rebasing: range[(j + 1)...])
            // Recurse into the smaller side, loop on the larger.
            if left.count < right.count {
                sort(left)
                range = right
            } else {
                sort(right)
                range = left
            }
        }
        for i in range.indices.dropFirst() {
            let value = range[i]
            var j = i
            while j > 0 && value < range[j - 1] {
                range[j] = range[j - 1]
                j -= 1
            }
            range[j] = value
        }
    }

    /// Where the zeros sort and the sample's own ties.
    struct TieStructure: Sendable {
        /// `values[zeroStart..<zeroEnd]` are the explicit zeros (an empty range marks where zeros sort).
        let zeroStart: Int
        let zeroEnd: Int
        /// Σ (t³ − t) over this sample's tie blocks (the zero block counted once, whole).
        let tieTerm: Double
        /// Whether any value occurs more than once.
        let hasTies: Bool

        init(_ sorted: UnsafeBufferPointer<Double>, zeroCount: Int) {
            zeroStart = sorted.partitioningIndex { $0 >= 0 }
            zeroEnd = sorted.partitioningIndex { $0 > 0 }
            var tieTerm = 0.0
            var hasTies = false
            var blocks = Blocks(sorted, zeroCount: zeroCount, zeroStart: zeroStart, zeroEnd: zeroEnd)
            while let block = blocks.next() {
                if block.count > 1 {
                    hasTies = true
                    tieTerm += SortedSpan.tieContribution(block.count)
                }
            }
            self.tieTerm = tieTerm
            self.hasTies = hasTies
        }
    }

    /// t³ − t of one tie block, in float64 like scipy's `t**3 - t` (exact below t ≈ 2·10⁵).
    static func tieContribution(_ t: Int) -> Double {
        let d = Double(t)
        return d * d * d - d
    }

    /// The distinct values in ascending order with their multiplicities; the implicit zeros join
    /// the explicit zeros in one block.
    struct Blocks {
        private let values: UnsafeBufferPointer<Double>
        private let zeroCount: Int, zeroStart: Int, zeroEnd: Int
        private var index = 0
        private var zerosPending: Bool

        init(_ values: UnsafeBufferPointer<Double>, zeroCount: Int, zeroStart: Int, zeroEnd: Int) {
            self.values = values
            self.zeroCount = zeroCount
            self.zeroStart = zeroStart
            self.zeroEnd = zeroEnd
            self.zerosPending = zeroCount > 0
        }

        init(_ span: SortedSpan) {
            self.init(span.values, zeroCount: span.zeroCount, zeroStart: span.ties.zeroStart, zeroEnd: span.ties.zeroEnd)
        }

        mutating func next() -> (value: Double, count: Int)? {
            if zerosPending && index == zeroStart {
                zerosPending = false
                index = zeroEnd
                return (0, zeroCount + zeroEnd - zeroStart)
            }
            guard index < values.count else { return nil }
            let value = values[index]
            var end = index + 1
            while end < values.count && values[end] == value { end += 1 }
            defer { index = end }
            return (value, end - index)
        }
    }
}

extension UnsafeBufferPointer where Element == Double {
    /// First index whose element satisfies `isAtOrPast` (which must be false then true along the
    /// buffer), by binary search.
    fileprivate func partitioningIndex(where isAtOrPast: (Double) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if isAtOrPast(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

/// Result of a two-sided Mann–Whitney U test.
public struct MannWhitneyResult: Sendable, Equatable {
    /// U1 = R1 − n1(n1+1)/2 of the first (target) sample: scipy's and pdex's `statistic`.
    public var statistic: Double
    /// Two-sided p-value (scipy's `mannwhitneyu(..., method="auto")`); NaN where scipy gives NaN
    /// (NaN or empty input; all values tied without continuity correction). pdex reports those as 1.
    public var pValue: Double
    /// Whether the exact null distribution was used (`false` for the normal approximation).
    public var isExact: Bool
}

/// The two-sided Mann–Whitney U test of scipy 1.17.1 (`mannwhitneyu`, method "auto"), as pdex's
/// "wilcoxon" metric calls it: `mannwhitneyu(target, reference, use_continuity: tie_correct)`.
public enum MannWhitney {
    /// Tests `target` against `reference` (REFERENCE-SEMANTICS §3.6).
    ///
    /// Exact iff (n1 ≤ 8 or n2 ≤ 8) and the pooled sample has no ties: p = min(1, 2·P(U ≤ min(U1,
    /// n1·n2 − U1))) from scipy's null recurrence (memoised in `exactNull`). Otherwise the normal
    /// approximation with tie correction, and `useContinuity` subtracting ½ from |U − μ|.
    ///
    /// Each distinct target value is located in the sorted reference by galloping search, so a
    /// call costs O(d·log(n2/d)) for d distinct target values, plus O(n1 log n1) to sort the target
    /// once; the reference's tie term is precomputed. No allocation except when `exactNull` grows.
    public static func test(
        _ target: SortedSample, _ reference: SortedSample, useContinuity: Bool = true,
        exactNull: inout MannWhitneyExactNull
    ) -> MannWhitneyResult {
        target.withSpan { t in
            reference.withSpan { r in test(t, r, useContinuity: useContinuity, exactNull: &exactNull) }
        }
    }

    /// `test` of two spans (the same computation, on borrowed storage).
    public static func test(
        _ target: SortedSpan, _ reference: SortedSpan, useContinuity: Bool = true,
        exactNull: inout MannWhitneyExactNull
    ) -> MannWhitneyResult {
        let n1 = target.count, n2 = reference.count
        guard n1 > 0, n2 > 0, target.nanCount == 0, reference.nanCount == 0 else {
            return MannWhitneyResult(statistic: .nan, pValue: .nan, isExact: false)
        }
        var twiceRankSum = 0  // 2·R1: average ranks are half-integers, so this is exact
        var crossTieTerm = 0.0
        var sharesValues = false
        var targetBefore = 0
        var hint = 0
        var blocks = SortedSpan.Blocks(target)
        do {
            let ref = reference.values
            while let (value, a) = blocks.next() {
                let lower = gallop(ref, from: hint) { $0 < value }
                let upper = gallop(ref, from: lower) { $0 <= value }
                hint = upper
                var referenceBefore = lower
                var b = upper - lower
                if value > 0 { referenceBefore += reference.zeroCount }
                if value == 0 { b += reference.zeroCount }
                twiceRankSum += a * (2 * (referenceBefore + targetBefore) + a + b + 1)
                if b > 0 {
                    sharesValues = true
                    // (a+b)³ − (a+b) − (a³ − a) − (b³ − b): the pooled block replaces both.
                    crossTieTerm += 3 * Double(a) * Double(b) * Double(a + b)
                }
                targetBefore += a
            }
        }
        let product = n1 * n2
        let u1 = Double(twiceRankSum - n1 * (n1 + 1)) / 2
        let hasTies = sharesValues || target.ties.hasTies || reference.ties.hasTies
        if (n1 <= 8 || n2 <= 8) && !hasTies {
            let u1Int = Int(u1)
            let p = exactNull.twoSidedP(atMost: min(u1Int, product - u1Int), n1, n2)
            return MannWhitneyResult(statistic: u1, pValue: p, isExact: true)
        }
        // scipy's `_get_mwu_z`, operation for operation.
        let tieTerm = reference.ties.tieTerm + target.ties.tieTerm + crossTieTerm
        let n = n1 + n2
        let u = max(u1, Double(product) - u1)
        let sigma = (Double(product) / 12 * (Double(n + 1) - tieTerm / Double(n * (n - 1)))).squareRoot()
        var numerator = u - Double(product) / 2
        if useContinuity { numerator -= 0.5 }
        let p = 2 * Normal.cdf(-(numerator / sigma))
        return MannWhitneyResult(statistic: u1, pValue: p > 1 ? 1 : p, isExact: false)
    }

    /// `test` of two plain arrays, with a throwaway exact-distribution cache.
    public static func test(_ target: [Double], _ reference: [Double], useContinuity: Bool = true)
        -> MannWhitneyResult
    {
        var exactNull = MannWhitneyExactNull()
        return test(SortedSample(target), SortedSample(reference), useContinuity: useContinuity,
                    exactNull: &exactNull)
    }

    /// First index ≥ `start` whose element is not `isBefore` (monotone), by exponential then
    /// binary search: O(log distance) from the previous hit.
    @inline(__always)
    private static func gallop(
        _ a: UnsafeBufferPointer<Double>, from start: Int, _ isBefore: (Double) -> Bool
    ) -> Int {
        var low = start, bound = start, step = 1
        while bound < a.count && isBefore(a[bound]) {
            low = bound + 1
            bound += step
            step <<= 1
        }
        var high = min(bound, a.count)
        while low < high {
            let mid = (low + high) / 2
            if isBefore(a[mid]) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// The exact null distribution of Mann–Whitney U, memoised per shape (n1, n2) and extended on
/// demand, as scipy's `_mwu_state` does per thread. Keep one per thread and pass it to every test.
///
/// The counts follow scipy's `_MWU.build_u_freqs_array` recurrence c(u) = Σ_{j<u} c(j)·σ(u−j) / u
/// in float64, including its quirk of truncating toward zero while the counts still fit uint64,
/// then P(U ≤ k) = Σ_{u≤k} (c(u)/C(n1+n2, n1)) summed left to right like `np.cumsum`. Exact integer
/// counts would differ from scipy by up to ~3·10⁻¹³ relative once n1·n2 reaches the thousands;
/// this reproduces scipy to ~10⁻¹⁵ (its dot products use BLAS, whose summation order we cannot
/// know). Cost O(k²) for the largest k asked of a shape; k ≤ n1·n2/2.
public struct MannWhitneyExactNull: Sendable {
    private struct Shape: Hashable { let small: Int, large: Int }

    private struct Table {
        let total: Double
        /// σ(j) = Σ_{d | j, d ≤ small} d − Σ_{d | j, large < d ≤ large + small} d, stored reversed:
        /// `reversedSigma[i]` = σ(capacity − i), so σ(u − j) for j = 0..<u is
        /// `reversedSigma[capacity − u + j]` and both operands of each dot product are contiguous.
        let reversedSigma: [Double]
        /// The largest k ever needed: min(U1, U2) ≤ n1·n2/2.
        let capacity: Int
        var counts: [Double] = [1]
        var cdf: [Double]
        var fitsUInt64 = true

        init(_ shape: Shape) {
            total = MannWhitneyExactNull.binomial(shape.small + shape.large, shape.small)
            cdf = [1 / total]
            let capacity = shape.small * shape.large / 2
            var reversed = [Double](repeating: 0, count: capacity + 1)
            for d in 1...shape.small {
                for (divisor, sign) in [(d, 1.0), (shape.large + d, -1.0)] {
                    for multiple in stride(from: divisor, through: capacity, by: divisor) {
                        reversed[capacity - multiple] += sign * Double(divisor)
                    }
                }
            }
            self.capacity = capacity
            self.reversedSigma = reversed
        }

        /// Extends counts and cdf through index `last` (≤ capacity).
        mutating func extend(through last: Int) {
            let first = counts.count
            guard last >= first else { return }
            counts.reserveCapacity(last + 1)
            cdf.reserveCapacity(last + 1)
            for u in first...last {
                let dot = counts.withUnsafeBufferPointer { c in
                    reversedSigma.withUnsafeBufferPointer { r in
                        Self.dot(c.baseAddress!, r.baseAddress! + (capacity - u), u)
                    }
                }
                var value = dot / Double(u)
                if fitsUInt64 && value >= 0x1p64 { fitsUInt64 = false }  // scipy: `new_val > uint_max`
                if fitsUInt64 { value.round(.towardZero) }  // stored into a uint64 array
                counts.append(value)
                cdf.append(cdf[u - 1] + value / total)
            }
        }

        /// Σ a[i]·b[i] for i < n, eight partial sums (scipy's own order is BLAS's, unknowable).
        @inline(__always)
        private static func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ n: Int) -> Double {
            var low = SIMD4<Double>(), high = SIMD4<Double>()
            let rawA = UnsafeRawPointer(a), rawB = UnsafeRawPointer(b)
            let stride = MemoryLayout<Double>.stride
            var i = 0
            while i + 8 <= n {
                low += rawA.loadUnaligned(fromByteOffset: i * stride, as: SIMD4<Double>.self)
                    * rawB.loadUnaligned(fromByteOffset: i * stride, as: SIMD4<Double>.self)
                high += rawA.loadUnaligned(fromByteOffset: (i + 4) * stride, as: SIMD4<Double>.self)
                    * rawB.loadUnaligned(fromByteOffset: (i + 4) * stride, as: SIMD4<Double>.self)
                i += 8
            }
            var sum = (low + high).sum()
            while i < n {
                sum += a[i] * b[i]
                i += 1
            }
            return sum
        }
    }

    private var tables: [Shape: Table] = [:]

    public init() {}

    /// min(1, 2·P(U ≤ k)) under the null for sample sizes n1, n2 (either order).
    mutating func twoSidedP(atMost k: Int, _ n1: Int, _ n2: Int) -> Double {
        let shape = Shape(small: min(n1, n2), large: max(n1, n2))
        tables[shape, default: Table(shape)].extend(through: k)
        return min(2 * tables[shape]!.cdf[k], 1)
    }

    /// C(n, k) for small k as scipy's `special.binom` computes it for integers: the product
    /// Π (n−k+i)/i with numerator and denominator accumulated separately.
    static func binomial(_ n: Int, _ k: Int) -> Double {
        var numerator = 1.0, denominator = 1.0
        for i in stride(from: 1, through: k, by: 1) {
            numerator *= Double(i + n - k)
            denominator *= Double(i)
            if abs(numerator) > 1e50 {
                numerator /= denominator
                denominator = 1
            }
        }
        return numerator / denominator
    }
}
