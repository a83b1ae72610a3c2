import Foundation

/// Why scipy's `anderson_ksamp` would refuse a pair of samples.
public enum AndersonDarlingError: Error, Equatable, Sendable {
    /// A sample has no observations (scipy: ValueError; pdex reports p = 1, statistic NaN).
    case emptySample
    /// All observations are equal (scipy: ValueError; pdex reports p = 1, statistic NaN).
    case singleDistinctValue
    /// Only two observations in all: scipy fails with an IndexError, which aborts pdex.
    case tooFewObservations
    /// A NaN among the observations: scipy has no NaN policy here and returns a meaningless number.
    case nanValue
}

/// Standardized statistic and interpolated p-value of the two-sample Anderson–Darling test.
public struct AndersonDarlingResult: Sendable, Equatable {
    /// (A²akN − 1)/σ_N, scipy's `statistic`; NaN for three observations in all, as in scipy.
    public var statistic: Double
    /// Interpolated significance, capped at 0.25 and floored at 0.001 like scipy (NaN with a NaN
    /// statistic).
    public var pValue: Double
}

/// scipy 1.17.1's `anderson_ksamp([target, reference])` with its defaults, as pdex's "anderson"
/// metric calls it: the midrank statistic (Scholz & Stephens 1987, eq. 7) for k = 2, standardized,
/// and the p-value interpolated in the table of critical values (REFERENCE-SEMANTICS §3.8).
///
/// Every float operation follows scipy's expression order, and its sums use numpy's pairwise
/// summation, so results agree to the last bit or nearly so.
public enum AndersonDarling {
    /// Critical values for k = 2 (`b0 + b1/√1 + b2/1` of scipy's table) and their levels.
    static let criticalMin = 0.32500000000000007
    static let criticalMax = 6.546
    /// `np.polyfit(critical, log(levels), 2)`, highest power first, as numpy computes it on the
    /// machine that made the goldens (LAPACK may differ in the last bit elsewhere).
    static let logLevelFit = (0.01819809457411147, -1.0082265644652515, -1.077770279820484)

    /// The constants of the variance of A²akN that depend only on the total size N: compute once
    /// per N and reuse across genes (each costs O(N)).
    public struct Standardization: Sendable, Equatable {
        public let totalCount: Int
        /// h = Σ_{i=1}^{N−1} 1/i and g = Σ_{i=1}^{N−2} Σ_{j=i+1}^{N−1} 1/((N−i)·j), in scipy's order.
        let h: Double
        let g: Double

        /// Throws `tooFewObservations` for N < 3, where scipy's construction fails.
        public init(totalCount n: Int) throws(AndersonDarlingError) {
            guard n >= 3 else { throw .tooFewObservations }
            // hs_cs = cumsum(1/(N−1), 1/(N−2), …, 1/2);  g = sum(hs_cs / (2, 3, …, N−1)).
            var terms = HarmonicTerms(n: n)
            g = numpySum(n - 2, &terms)
            h = terms.cumulative + 1
            totalCount = n
        }

        private struct HarmonicTerms: SummandStream {
            let n: Int
            var t = 0
            var cumulative = 0.0
            mutating func next() -> Double {
                cumulative += 1 / Double(n - 1 - t)
                t += 1
                return cumulative / Double(t + 1)
            }
        }
    }

    /// The test of `target` against `reference` (in that order, as pdex passes them).
    ///
    /// Implicit zeros of sparse samples form one block of ties like any other value, so they cost
    /// nothing extra. O(n1 + n2) per call; pass `standardization` for the pooled size to skip its
    /// O(N) setup.
    public static func test(
        _ target: SortedSample, _ reference: SortedSample, standardization: Standardization? = nil
    ) throws(AndersonDarlingError) -> AndersonDarlingResult {
        try target.withSpan { t throws(AndersonDarlingError) in
            try reference.withSpan { r throws(AndersonDarlingError) in try test(t, r, standardization: standardization) }
        }
    }

    /// `test` of two spans (the same computation, on borrowed storage).
    public static func test(
        _ target: SortedSpan, _ reference: SortedSpan, standardization: Standardization? = nil
    ) throws(AndersonDarlingError) -> AndersonDarlingResult {
        guard target.nanCount == 0, reference.nanCount == 0 else { throw .nanValue }
        let n1 = target.count, n2 = reference.count
        let total = n1 + n2
        let distinct = pooledDistinctCount(target, reference)
        guard distinct >= 2 else { throw .singleDistinctValue }
        guard n1 > 0, n2 > 0 else { throw .emptySample }
        let constants: Standardization
        if let standardization {
            precondition(standardization.totalCount == total, "standardization is for another N")
            constants = standardization
        } else {
            constants = try Standardization(totalCount: total)
        }

        // A2akN = (N−1)/N · Σ_i (1/n_i) Σ_j (l_j/N)(N·M_ij − B_j·n_i)² / (B_j(N − B_j) − N·l_j/4)
        var targetTerms = InnerTerms(target, reference, firstSample: true, size: n1, total: total)
        var referenceTerms = InnerTerms(target, reference, firstSample: false, size: n2, total: total)
        var a2kN = 0.0
        a2kN += numpySum(distinct, &targetTerms) / Double(n1)
        a2kN += numpySum(distinct, &referenceTerms) / Double(n2)
        a2kN *= (Double(total) - 1) / Double(total)

        // Standardization for k = 2, in scipy's operation order.
        let h = constants.h, g = constants.g
        let hSum = 0.0 + 1 / Double(n1) + 1 / Double(n2)
        let k = 2.0, kk = 4.0
        let a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * hSum
        let b = (2 * g - 4) * kk + 8 * h * k + (2 * g - 14 * h - 4) * hSum - 8 * h + 4 * g - 6
        let c = (6 * h + 2 * g - 2) * kk + (4 * h - 4 * g + 6) * k + (2 * h - 6) * hSum + 4 * h
        let d = (2 * h + 6) * kk - 4 * h * k
        let nn = Double(total)
        // Python forms N**3 exactly and rounds it once to float; so do we while it fits in Int.
        let (cube, overflow) = (total * total).multipliedReportingOverflow(by: total)
        let nCubed = overflow ? nn * nn * nn : Double(cube)
        let sigmaSquared = (a * nCubed + b * Double(total * total) + c * nn + d)
            / ((nn - 1) * (nn - 2) * (nn - 3))
        let statistic = (a2kN - 1) / sigmaSquared.squareRoot()
        return AndersonDarlingResult(statistic: statistic, pValue: pValue(statistic))
    }

    /// scipy's p-value rule: 0.25 below the smallest critical value, 0.001 above the largest,
    /// else exp of the quadratic fit (Horner, as `np.polyval`).
    static func pValue(_ statistic: Double) -> Double {
        if statistic < criticalMin { return 0.25 }
        if statistic > criticalMax { return 0.001 }
        let (c0, c1, c2) = logLevelFit
        return exp((c0 * statistic + c1) * statistic + c2)
    }

    /// Number of distinct values in the pooled sample (L), without materialising it.
    private static func pooledDistinctCount(_ x: SortedSpan, _ y: SortedSpan) -> Int {
        var blocks = PooledBlocks(x, y)
        var count = 0
        while blocks.next() != nil { count += 1 }
        return count
    }

    /// The distinct pooled values in ascending order, as (count in x, count in y).
    private struct PooledBlocks {
        private var x: SortedSpan.Blocks, y: SortedSpan.Blocks
        private var headX: (value: Double, count: Int)?, headY: (value: Double, count: Int)?

        init(_ x: SortedSpan, _ y: SortedSpan) {
            self.x = SortedSpan.Blocks(x)
            self.y = SortedSpan.Blocks(y)
            headX = self.x.next()
            headY = self.y.next()
        }

        mutating func next() -> (x: Int, y: Int)? {
            switch (headX, headY) {
            case (nil, nil):
                return nil
            case let (bx?, by?) where bx.value == by.value:
                headX = x.next()
                headY = y.next()
                return (bx.count, by.count)
            case let (bx?, by?) where bx.value < by.value:
                headX = x.next()
                return (bx.count, 0)
            case let (bx?, nil):
                headX = x.next()
                return (bx.count, 0)
            case let (_, by?):
                headY = y.next()
                return (0, by.count)
            }
        }
    }

    /// The summands of one sample's inner sum, one per distinct pooled value, in scipy's form:
    /// `lj / float(N) * (N*Mij - Bj*n[i])**2 / (Bj*(N - Bj) - N*lj/4.)`.
    private struct InnerTerms: SummandStream {
        var blocks: PooledBlocks
        let firstSample: Bool
        let size: Double
        let total: Int
        var pooledBefore = 0
        var sampleThrough = 0

        init(_ x: SortedSpan, _ y: SortedSpan, firstSample: Bool, size: Int, total: Int) {
            self.blocks = PooledBlocks(x, y)
            self.firstSample = firstSample
            self.size = Double(size)
            self.total = total
        }

        mutating func next() -> Double {
            let (countX, countY) = blocks.next()!
            let l = countX + countY
            let f = firstSample ? countX : countY
            sampleThrough += f
            let n = Double(total)
            let bj = Double(pooledBefore) + Double(l) / 2
            let mij = Double(sampleThrough) - Double(f) / 2
            pooledBefore += l
            let deviation = n * mij - bj * size
            return Double(l) / n * (deviation * deviation) / (bj * (n - bj) - Double(total * l) / 4)
        }
    }
}

/// Terms produced one at a time, strictly in order, for `numpySum`.
protocol SummandStream {
    mutating func next() -> Double
}

/// `np.sum` of `count` float64 terms, bit for bit: numpy's pairwise summation (runs of up to 128
/// terms summed with eight interleaved accumulators, longer runs split in two at a multiple of 8).
/// It consumes terms in index order, so callers generate them without an array.
func numpySum<S: SummandStream>(_ count: Int, _ terms: inout S) -> Double {
    if count < 8 {
        var sum = 0.0
        for _ in 0..<count { sum += terms.next() }
        return sum
    }
    if count <= 128 {
        var r0 = terms.next(), r1 = terms.next(), r2 = terms.next(), r3 = terms.next()
        var r4 = terms.next(), r5 = terms.next(), r6 = terms.next(), r7 = terms.next()
        var i = 8
        let unrolled = count - count % 8
        while i < unrolled {
            r0 += terms.next(); r1 += terms.next(); r2 += terms.next(); r3 += terms.next()
            r4 += terms.next(); r5 += terms.next(); r6 += terms.next(); r7 += terms.next()
            i += 8
        }
        var sum = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < count {
            sum += terms.next()
            i += 1
        }
        return sum
    }
    var half = count / 2
    half -= half % 8
    let left = numpySum(half, &terms)
    return left + numpySum(count - half, &terms)
}
