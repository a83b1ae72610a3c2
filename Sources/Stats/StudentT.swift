import Foundation

/// Count, mean and sum of squared deviations (M2) of a sample: the sufficient statistics of the
/// pooled t-test, so a caller can stream its data (`add`) or combine partial results (`merged`).
public struct SampleMoments: Sendable, Equatable {
    public private(set) var count: Int
    public private(set) var mean: Double
    /// Σ (x − mean)².
    public private(set) var m2: Double

    /// The empty sample.
    public init() {
        self.init(count: 0, mean: 0, m2: 0)
    }

    public init(count: Int, mean: Double, m2: Double) {
        precondition(count >= 0, "a sample cannot have a negative count")
        self.count = count
        self.mean = mean
        self.m2 = m2
    }

    /// Two passes as scipy's `ttest_ind` computes them: mean = `np.mean` (pairwise sum / n), then
    /// M2 = pairwise Σ (x − mean)². A t-test from these agrees with scipy to the last bit or so;
    /// streamed moments (`add`) differ in rounding, most visibly for constant samples, where the
    /// two-pass mean may be off by an ulp and scipy reports a huge finite t instead of ±∞.
    public init(_ values: [Double]) {
        self = values.withUnsafeBufferPointer { SampleMoments($0) }
    }

    /// `init(_:)` over borrowed storage.
    public init(_ values: UnsafeBufferPointer<Double>) {
        let n = values.count
        var sum = Terms(values: values)
        let mean = numpySum(n, &sum) / Double(n)
        var squares = SquaredDeviations(values: values, mean: mean)
        self.init(count: n, mean: n == 0 ? 0 : mean, m2: numpySum(n, &squares))
    }

    /// Welford's update: one pass, numerically stable.
    public mutating func add(_ x: Double) {
        count += 1
        let delta = x - mean
        mean += delta / Double(count)
        m2 += delta * (x - mean)
    }

    /// The moments of the union of two samples (Chan et al.); a block of k implicit zeros is
    /// `SampleMoments(count: k, mean: 0, m2: 0)`.
    public func merged(with other: SampleMoments) -> SampleMoments {
        if other.count == 0 { return self }
        if count == 0 { return other }
        let n = Double(count + other.count)
        let delta = other.mean - mean
        let weight = Double(other.count) / n
        return SampleMoments(
            count: count + other.count, mean: mean + delta * weight,
            m2: m2 + other.m2 + delta * delta * Double(count) * weight)
    }

    private struct Terms: SummandStream {
        let values: UnsafeBufferPointer<Double>
        var index = 0
        mutating func next() -> Double {
            defer { index += 1 }
            return values[index]
        }
    }

    private struct SquaredDeviations: SummandStream {
        let values: UnsafeBufferPointer<Double>
        let mean: Double
        var index = 0
        mutating func next() -> Double {
            defer { index += 1 }
            return (values[index] - mean) * (values[index] - mean)
        }
    }
}

/// Two-sided pooled-variance t-test result.
public struct TTestResult: Sendable, Equatable {
    /// t = (mean1 − mean2)/sqrt(s²(1/n1 + 1/n2)).
    public var statistic: Double
    public var pValue: Double
    public var degreesOfFreedom: Double
}

/// Student's t distribution, and scipy's `ttest_ind` with its defaults (pooled variance,
/// two-sided), as pdex's "t-test" metric calls it (REFERENCE-SEMANTICS §3.9).
///
/// The tail is the regularized incomplete beta P(T > t) = ½·I_x(ν/2, ½), x = ν/(ν + t²), evaluated
/// so that relative accuracy holds in both tails and for large ν: a continued fraction where it
/// is well conditioned, and for ν ≥ 50 with moderate t an expansion in incomplete gamma functions
/// (the continued fraction loses ~ν·ε there). Accuracy is a few 1e-16 relative, degrading as
/// t²·ε in the far tail, which is the conditioning of the function itself.
public enum StudentT {
    /// P(T ≤ t) for ν = `degreesOfFreedom` > 0; NaN for ν ≤ 0 or NaN input, as scipy's `stdtr`.
    public static func cdf(_ t: Double, degreesOfFreedom df: Double) -> Double {
        guard !t.isNaN, df > 0 else { return .nan }
        return t <= 0 ? upperTail(-t, df) : 1 - upperTail(t, df)
    }

    /// P(T > t), computed directly (no 1 − cdf cancellation in the upper tail).
    public static func sf(_ t: Double, degreesOfFreedom df: Double) -> Double {
        guard !t.isNaN, df > 0 else { return .nan }
        return t >= 0 ? upperTail(t, df) : 1 - upperTail(-t, df)
    }

    /// scipy's pooled two-sample t-test of `a` against `b`, from their moments, in scipy's
    /// operation order. An empty sample gives NaN; a sample of one contributes no variance;
    /// zero pooled variance gives ±∞ with p = 0 (different means) or NaN (equal means).
    public static func pooledTest(_ a: SampleMoments, _ b: SampleMoments) -> TTestResult {
        let n1 = a.count, n2 = b.count
        guard n1 > 0, n2 > 0 else {
            return TTestResult(statistic: .nan, pValue: .nan, degreesOfFreedom: .nan)
        }
        let v1 = n1 == 1 ? 0 : a.m2 / Double(n1) * (Double(n1) / (Double(n1) - 1))
        let v2 = n2 == 1 ? 0 : b.m2 / Double(n2) * (Double(n2) / (Double(n2) - 1))
        // scipy's NaN policy reports df NaN too when the data hold NaN.
        let df = a.mean.isNaN || b.mean.isNaN ? .nan : Double(n1 + n2) - 2
        let pooled = (Double(n1 - 1) * v1 + Double(n2 - 1) * v2) / df
        let denominator = (pooled * (1 / Double(n1) + 1 / Double(n2))).squareRoot()
        let t = (a.mean - b.mean) / denominator
        let p = t.isNaN ? Double.nan : 2 * upperTail(abs(t), df)
        return TTestResult(statistic: t, pValue: p, degreesOfFreedom: df)
    }

    /// P(T > t) for t ≥ 0, ν > 0.
    static func upperTail(_ t: Double, _ df: Double) -> Double {
        if t == 0 { return 0.5 }
        if t.isInfinite { return 0 }
        if df.isInfinite { return Normal.sf(t) }
        let tt = t * t
        guard tt.isFinite else { return 0 }  // t beyond 1e154: below the smallest double
        let a = df / 2
        let x = df / (df + tt), y = tt / (df + tt)
        let logInverseX = log1p(tt / df)  // −log x, accurate when x is near 1
        let xPowA = exp(-a * logInverseX)
        if a >= 25 && logInverseX <= 1 {
            return 0.5 * gammaSeries(a: a, u: logInverseX)
        }
        let ratio = gammaRatio(a)  // Γ(a + ½)/Γ(a) = √π / B(a, ½)
        if x < (a + 1) / (a + 2.5) {
            // I_x(a, ½) = x^a·√y / (a·B(a, ½)) · CF
            let front = xPowA * y.squareRoot() * ratio / (a * Double.pi.squareRoot())
            return 0.5 * front * continuedFraction(p: a, q: 0.5, x: x, y: y)
        }
        // I_x(a, ½) = 1 − I_y(½, a), I_y(½, a) = y^½·x^a / (½·B(½, a)) · CF
        let front = y.squareRoot() * xPowA * ratio * 2 / Double.pi.squareRoot()
        return 0.5 - 0.5 * front * continuedFraction(p: 0.5, q: a, x: y, y: x)
    }

    /// The continued fraction of I_x(p, q) (DLMF 8.17.22) without its front factor, by the
    /// modified Lentz method; `y` = 1 − x, supplied accurately so the first denominator
    /// 1 − (p+q)x/(p+1) = ((p+1)y + (1−q)x)/(p+1) does not cancel.
    private static func continuedFraction(p: Double, q: Double, x: Double, y: Double) -> Double {
        let tiny = 1e-300
        func guarded(_ v: Double) -> Double { abs(v) < tiny ? tiny : v }
        var c = 1.0
        var d = 1 / guarded(((p + 1) * y + (1 - q) * x) / (p + 1))
        var h = d
        for m in 1...100_000 {
            let mm = Double(m), twoM = 2 * Double(m)
            let even = mm * (q - mm) * x / ((p + twoM - 1) * (p + twoM))
            d = 1 / guarded(1 + even * d)
            c = guarded(1 + even / c)
            h *= d * c
            let odd = -(p + mm) * (p + q + mm) * x / ((p + twoM) * (p + twoM + 1))
            d = 1 / guarded(1 + odd * d)
            c = guarded(1 + odd / c)
            let step = d * c
            h *= step
            if abs(step - 1) < 1e-16 { break }
        }
        return h
    }

    /// I_x(a, ½) for large a, with u = −log x: writing s = e^{−v},
    /// I_x(a, ½) = (1/B(a, ½)) ∫_u^∞ e^{−av} v^{−½} g(v) dv, g(v) = (v/(1 − e^{−v}))^{½} = Σ g_n vⁿ,
    /// so I_x = (Γ(a+½)/Γ(a)/√π) Σ g_n Γ(½+n, a·u) / a^{½+n}. Every term is well conditioned;
    /// the series converges geometrically (ratio ≈ max(u, n/a)/2π) for u ≤ 1 and a ≥ 25.
    private static func gammaSeries(a: Double, u: Double) -> Double {
        let z = a * u
        let rootZ = z.squareRoot()
        var upperGamma = Double.pi.squareRoot() * erfc(rootZ)  // Γ(½, z)
        var power = rootZ * exp(-z)  // z^s·e^{−z}, s = ½ + n
        var s = 0.5
        var scale = 1 / a.squareRoot()
        var total = 0.0
        for coefficient in halfPowerSeries {
            let term = coefficient * upperGamma * scale
            total += term
            if abs(term) <= 1e-17 * abs(total) { break }
            upperGamma = s * upperGamma + power  // Γ(s+1, z) = s·Γ(s, z) + z^s·e^{−z}
            power *= z
            s += 1
            scale /= a
        }
        return gammaRatio(a) / Double.pi.squareRoot() * total
    }

    /// Taylor coefficients g_n of (v/(1 − e^{−v}))^{½}: invert (1 − e^{−v})/v = Σ (−1)ⁿvⁿ/(n+1)!,
    /// then take the square root of the series.
    private static let halfPowerSeries: [Double] = {
        let count = 40
        var factorial = 1.0
        var h = [Double](repeating: 0, count: count)
        for n in 0..<count {
            factorial *= Double(n + 1)
            h[n] = (n % 2 == 0 ? 1 : -1) / factorial
        }
        var f = [Double](repeating: 0, count: count)
        f[0] = 1
        for n in 1..<count {
            f[n] = -(1...n).reduce(0.0) { $0 + h[$1] * f[n - $1] }
        }
        var g = [Double](repeating: 0, count: count)
        g[0] = 1
        for n in 1..<count {
            let cross = (1..<n).reduce(0.0) { $0 + g[$1] * g[n - $1] }
            g[n] = (f[n] - cross) / 2
        }
        return g
    }()

    /// Γ(a + ½)/Γ(a) to a few ulp: shift a up to ≥ 20 with Γ(a+1+½)/Γ(a+1) = ratio·(a+½)/a, then
    /// Stirling: ln Γ(a+½) − ln Γ(a) = a·log1p(1/(2a)) + ½ ln a − ½ + S(a+½) − S(a), with
    /// S(z) = Σ B_2k / (2k(2k−1) z^{2k−1}), which never forms the large ln Γ values themselves.
    static func gammaRatio(_ a: Double) -> Double {
        var shifted = a
        var product = 1.0
        while shifted < 20 {
            product *= shifted / (shifted + 0.5)
            shifted += 1
        }
        func stirlingTail(_ z: Double) -> Double {
            let w = 1 / (z * z)
            let series = 1.0 / 12 - w * (1.0 / 360 - w * (1.0 / 1260 - w * (1.0 / 1680 - w
                * (1.0 / 1188 - w * (691.0 / 360_360 - w / 156)))))
            return series / z
        }
        let exponent = shifted * log1p(1 / (2 * shifted)) - 0.5
            + (stirlingTail(shifted + 0.5) - stirlingTail(shifted))
        return product * shifted.squareRoot() * exp(exponent)
    }
}
