/// Why scipy's `false_discovery_control` would refuse p-values.
public enum BenjaminiHochbergError: Error, Equatable, Sendable {
    /// scipy raises ValueError unless every p-value lies in [0, 1]; NaN fails too.
    case pValueOutOfRange(index: Int, value: Double)
}

/// Benjamini–Hochberg step-up adjusted p-values (REFERENCE-SEMANTICS §4) in the two reference
/// flavours, which differ only in last-bit rounding of the step-2 factor: statsmodels divides by
/// k/m, scipy multiplies by m/k. Each reproduces its reference bit for bit, so downstream
/// thresholds and sort orders agree exactly. Input order is kept; O(m log m).
public enum BenjaminiHochberg {
    /// statsmodels `multipletests(p, method="fdr_bh")[1]` (as sctrial calls it): q_(k) =
    /// min_{j ≥ k} p_(j) / (j/m), values above 1 set to 1. No validation, like statsmodels: a NaN
    /// anywhere makes every output NaN, and negative inputs pass through.
    public static func statsmodels(_ p: [Double]) -> [Double] {
        if p.contains(where: \.isNaN) { return [Double](repeating: .nan, count: p.count) }
        let m = Double(p.count)
        return stepUp(p) { value, rank in value / (Double(rank) / m) }.map { $0 > 1 ? 1 : $0 }
    }

    /// scipy `false_discovery_control(p, method="bh")` (as pdex calls it): q_(k) =
    /// min_{j ≥ k} p_(j)·(m/j), clipped to [0, 1]; fewer than two values are returned unchanged.
    public static func scipy(_ p: [Double]) throws(BenjaminiHochbergError) -> [Double] {
        if let index = p.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw .pValueOutOfRange(index: index, value: p[index])
        }
        if p.count <= 1 { return p }
        let m = Double(p.count)
        return stepUp(p) { value, rank in value * (m / Double(rank)) }.map { min(max($0, 0), 1) }
    }

    /// Sorts ascending, applies `adjust(p_(k), k)` (k from 1), takes the running minimum from the
    /// largest p down, and scatters back to input order. Tie order cannot matter: tied values end
    /// with the same minimum.
    private static func stepUp(_ p: [Double], _ adjust: (Double, Int) -> Double) -> [Double] {
        let order = p.indices.sorted { p[$0] < p[$1] }
        var q = [Double](repeating: 0, count: p.count)
        var running = Double.infinity
        for rank in stride(from: p.count, through: 1, by: -1) {
            let index = order[rank - 1]
            running = min(running, adjust(p[index], rank))
            q[index] = running
        }
        return q
    }
}
