import Foundation

/// Every p-value of a table, for the histogram, the QQ plot and the genomic inflation λ.
/// All of them are kept (8 bytes each: 128 MB for a 16M-row table) so that the median is exact.
struct PValues {
    private(set) var values: [Double] = []
    /// Rows whose p-value is missing or outside [0, 1] (not counted anywhere else).
    private(set) var missing = 0
    /// Histogram over [0, 1] in `bins` equal bins (p = 1 in the last).
    private(set) var histogram: [Int]

    init(bins: Int = 40) { histogram = Array(repeating: 0, count: bins) }

    mutating func add(_ p: Double) {
        isSorted = false
        guard p >= 0, p <= 1 else { missing += 1; return }
        values.append(p)
        histogram[min(histogram.count - 1, Int(p * Double(histogram.count)))] += 1
    }

    /// Sorts the values (ascending); `lambda` and `quantiles` need it. A full sort rather than a
    /// selection: the QQ plot needs many order statistics, the smallest ones densely.
    mutating func finish() {
        values.sort()
        isSorted = true
    }

    private(set) var isSorted = false

    /// The genomic inflation factor λ = median(χ²₁ quantile of 1 − p) / 0.4549364, computed on
    /// the sorted values: χ²₁ of p decreases with p, so its median is that of the middle
    /// p-value(s); with an even count the two middle χ² values are averaged (numpy's median).
    var lambda: Double {
        precondition(isSorted, "PValues.finish() first")
        let n = values.count
        guard n > 0 else { return .nan }
        let median = n % 2 == 1 ? ChiSquare1.inverseSurvival(values[n / 2])
            : (ChiSquare1.inverseSurvival(values[n / 2 - 1]) + ChiSquare1.inverseSurvival(values[n / 2])) / 2
        return median / 0.4549364
    }

    /// QQ points (expected, observed) in −log10 units: every one of the 200 smallest p-values
    /// (where departures show), then ranks spaced evenly in log scale up to the largest.
    func quantiles(points: Int = 400) -> [(expected: Double, observed: Double)] {
        precondition(isSorted, "PValues.finish() first")
        let n = values.count
        guard n > 0 else { return [] }
        var ranks = Array(0..<min(n, 200))
        if n > 200 {
            let steps = points - 200
            let (low, high) = (log(200.0), log(Double(n - 1)))
            for k in 0...steps {
                let rank = Int(exp(low + (high - low) * Double(k) / Double(steps)).rounded())
                if rank > ranks.last!, rank < n { ranks.append(rank) }
            }
        }
        return ranks.map { rank in
            (-log10((Double(rank) + 0.5) / Double(n)), -log10(max(values[rank], Double.leastNonzeroMagnitude)))
        }
    }
}

/// The χ² distribution with one degree of freedom, whose survival is erfc(√(x/2)).
enum ChiSquare1 {
    /// The x with P(χ²₁ > x) = p, by bisection on t = √(x/2) (erfc falls monotonically): exact to
    /// the last bit within 200 halvings, and λ needs only one or two values.
    static func inverseSurvival(_ p: Double) -> Double {
        guard p > 0 else { return .infinity }
        guard p < 1 else { return 0 }
        var (low, high) = (0.0, 40.0)
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if middle == low || middle == high { break }
            if erfc(middle) > p { low = middle } else { high = middle }
        }
        let t = (low + high) / 2
        return 2 * t * t
    }
}
