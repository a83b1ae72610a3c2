/// Sample quantiles with numpy's rules, so bootstrap confidence bounds match the reference.
public enum Percentile {
    /// numpy's default `method="linear"` (Hyndman–Fan type 7) quantile, `q` in [0, 1]
    /// (`np.percentile(v, p)` is this with `q = p / 100` computed in float64 first).
    ///
    /// `values` must be free of NaN; empty input gives NaN. Like numpy it selects the two order
    /// statistics around the virtual index (q·(n−1)) instead of sorting, and interpolates as
    /// numpy's `_lerp` does (`a + (b−a)·f` below f = 0.5, `b − (b−a)·(1−f)` from 0.5 on), so the
    /// result is bit-identical.
    public static func linear(_ values: [Double], _ q: Double) -> Double {
        guard let last = values.indices.last else { return .nan }
        let virtualIndex = Double(last) * q
        var v = values
        if virtualIndex >= Double(last) { return v.max()! }
        if virtualIndex < 0 { return v.min()! }
        let below = virtualIndex.rounded(.down)
        let index = Int(below)
        let fraction = virtualIndex - below
        let a = select(&v, index)
        let b = v[(index + 1)...].min()!  // everything after the selected slot is ≥ a
        let difference = b - a
        return fraction >= 0.5 ? b - difference * (1 - fraction) : a + difference * fraction
    }

    /// Reorders `v` so `v[k]` is its k-th smallest value with nothing smaller after it and
    /// nothing larger before it (quickselect, median-of-three pivot, expected linear time).
    private static func select(_ v: inout [Double], _ k: Int) -> Double {
        var low = 0, high = v.count - 1
        while low < high {
            let middle = low + (high - low) / 2
            if v[middle] < v[low] { v.swapAt(middle, low) }
            if v[high] < v[low] { v.swapAt(high, low) }
            if v[high] < v[middle] { v.swapAt(high, middle) }
            let pivot = v[middle]
            var i = low, j = high
            while i <= j {
                while v[i] < pivot { i += 1 }
                while v[j] > pivot { j -= 1 }
                if i <= j {
                    v.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j {
                high = j
            } else if k >= i {
                low = i
            } else {
                return v[k]
            }
        }
        return v[k]
    }
}
