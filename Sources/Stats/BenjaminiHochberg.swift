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
        return stepUp(p, adjust: { value, rank in value / (Double(rank) / m) }, bound: { $0 > 1 ? 1 : $0 })
    }

    /// scipy `false_discovery_control(p, method="bh")` (as pdex calls it): q_(k) =
    /// min_{j ≥ k} p_(j)·(m/j), clipped to [0, 1]; fewer than two values are returned unchanged.
    public static func scipy(_ p: [Double]) throws(BenjaminiHochbergError) -> [Double] {
        if let index = p.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw .pValueOutOfRange(index: index, value: p[index])
        }
        if p.count <= 1 { return p }
        let m = Double(p.count)
        return stepUp(p, adjust: { value, rank in value * (m / Double(rank)) }, bound: { min(max($0, 0), 1) })
    }

    /// Sorts ascending, applies `adjust(p_(k), k)` (k from 1), takes the running minimum from the
    /// largest p down, and scatters `bound` of it back to input order. Tie order cannot matter:
    /// tied values end with the same minimum.
    private static func stepUp(_ p: [Double], adjust: (Double, Int) -> Double, bound: (Double) -> Double) -> [Double] {
        let order = ascendingOrder(p)
        return [Double](unsafeUninitializedCapacity: p.count) { q, initialized in
            var running = Double.infinity
            for rank in stride(from: p.count, through: 1, by: -1) {
                let index = Int(order[rank - 1])
                running = min(running, adjust(p[index], rank))
                q[index] = bound(running)
            }
            initialized = p.count
        }
    }

    /// Input positions in ascending order of the (non-NaN) values: an LSD radix sort on the
    /// values' order-preserving bit keys, 11 bits a pass (6 passes, all histograms taken in one
    /// read), skipping digits every key shares (the high bits of p-values mostly), positions
    /// carried as 32 bits. A genome-wide DE table has ~10⁷ p-values; a comparison sort of indices
    /// took seconds there.
    static func ascendingOrder(_ values: [Double]) -> [UInt32] {
        let n = values.count
        precondition(n < Int(UInt32.max), "more p-values than 32-bit positions hold")
        guard n > 1 else { return (0..<n).map { UInt32($0) } }
        let bits = 11, buckets = 1 << bits
        let passes = (64 + bits - 1) / bits
        // Negative values: all bits flipped; others: the sign bit set. Unsigned order = numeric order.
        var keys = values.map { value -> UInt64 in
            let bits = value.bitPattern
            return bits >> 63 == 1 ? ~bits : bits | (1 << 63)
        }
        var counts = [Int](repeating: 0, count: passes * buckets)
        counts.withUnsafeMutableBufferPointer { counts in
            for key in keys {
                for pass in 0..<passes { counts[pass * buckets + Int((key >> UInt64(pass * bits)) & UInt64(buckets - 1))] += 1 }
            }
        }
        var order = [UInt32](unsafeUninitializedCapacity: n) { buffer, initialized in
            for i in 0..<n { buffer[i] = UInt32(i) }
            initialized = n
        }
        var keysOut = [UInt64](repeating: 0, count: n)
        var orderOut = [UInt32](repeating: 0, count: n)
        for pass in 0..<passes {
            let shift = UInt64(pass * bits)
            var starts = Array(counts[(pass * buckets)..<((pass + 1) * buckets)])
            if starts.contains(n) { continue }  // every key has the same digit here
            var total = 0
            for digit in 0..<buckets { (starts[digit], total) = (total, total + starts[digit]) }
            keys.withUnsafeBufferPointer { keys in
                order.withUnsafeBufferPointer { order in
                    keysOut.withUnsafeMutableBufferPointer { keysOut in
                        orderOut.withUnsafeMutableBufferPointer { orderOut in
                            starts.withUnsafeMutableBufferPointer { starts in
                                for i in 0..<n {
                                    let digit = Int((keys[i] >> shift) & UInt64(buckets - 1))
                                    let slot = starts[digit]
                                    starts[digit] = slot + 1
                                    keysOut[slot] = keys[i]
                                    orderOut[slot] = order[i]
                                }
                            }
                        }
                    }
                }
            }
            swap(&keys, &keysOut)
            swap(&order, &orderOut)
        }
        return order
    }
}
