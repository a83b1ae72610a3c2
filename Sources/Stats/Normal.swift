import Foundation

/// The standard normal distribution, through `erfc` so tails keep full relative precision
/// (`1 - cdf` would lose everything below ~1e-16).
public enum Normal {
    /// Φ(x).
    public static func cdf(_ x: Double) -> Double { 0.5 * erfc(-x * 0.5.squareRoot()) }

    /// Φ̄(x) = 1 − Φ(x).
    public static func sf(_ x: Double) -> Double { 0.5 * erfc(x * 0.5.squareRoot()) }

    /// Two-sided p-value of a z statistic, 2·Φ̄(|z|), as statsmodels and scipy compute it.
    public static func twoSidedP(_ z: Double) -> Double { z.isNaN ? .nan : min(1, 2 * sf(abs(z))) }
}
