import Foundation

/// The `capacity` smallest items seen by `isBefore`, in bounded memory (a max-heap of the kept
/// ones: a new item replaces the largest when it comes before it).
struct Smallest<Item> {
    let capacity: Int
    let isBefore: (Item, Item) -> Bool
    private var heap: [Item] = []

    init(_ capacity: Int, by isBefore: @escaping (Item, Item) -> Bool) {
        self.capacity = capacity
        self.isBefore = isBefore
    }

    /// Whether an item with this key would be kept (checked before building it, which may cost a String).
    func wouldKeep(_ item: Item) -> Bool { capacity > 0 && (heap.count < capacity || isBefore(item, heap[0])) }

    mutating func add(_ item: Item) {
        guard capacity > 0 else { return }
        if heap.count < capacity {
            heap.append(item)
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard isBefore(heap[parent], heap[child]) else { break }
                heap.swapAt(parent, child)
                child = parent
            }
        } else if isBefore(item, heap[0]) {
            heap[0] = item
            var parent = 0
            while true {
                let (left, right) = (2 * parent + 1, 2 * parent + 2)
                var largest = parent
                if left < heap.count, isBefore(heap[largest], heap[left]) { largest = left }
                if right < heap.count, isBefore(heap[largest], heap[right]) { largest = right }
                guard largest != parent else { break }
                heap.swapAt(parent, largest)
                parent = largest
            }
        }
    }

    /// The kept items, first first.
    var sorted: [Item] { heap.sorted(by: isBefore) }
    var count: Int { heap.count }
}

/// A volcano plot's data in bounded memory: every finite point counted in a density grid whose
/// extent doubles as points fall outside it (so one pass needs no ranges in advance), and the
/// most significant points kept individually to be drawn (and named) over the density.
struct Volcano {
    struct Point {
        var x: Double
        /// −log10 p (infinite for p = 0).
        var y: Double
        var p: Double
        var label: String
        /// Order in the table: ties in p keep it.
        var row: Int
    }

    /// Columns: x ∈ [−columns/2·dx, columns/2·dx), rows: y ∈ [0, rows·dy).
    let columns: Int
    let rows: Int
    private(set) var dx = 1.0 / 64
    private(set) var dy = 1.0 / 32
    private(set) var counts: [UInt32]
    private(set) var total = 0
    /// Points with x or y not finite (fold change 0 or ∞, p = 0): only drawn if highlighted.
    private(set) var offScale = 0
    private(set) var highlights: Smallest<Point>
    private(set) var significant = 0
    /// The largest p-value among significant points: where the FDR cut falls on the y axis.
    private(set) var largestSignificantP: Double?

    init(columns: Int = 192, rows: Int = 128, highlights: Int = 1500) {
        precondition(columns % 4 == 0 && rows % 2 == 0)
        self.columns = columns
        self.rows = rows
        counts = Array(repeating: 0, count: columns * rows)
        self.highlights = Smallest(highlights) { a, b in a.p < b.p || (a.p == b.p && a.row < b.row) }
    }

    /// Adds a point; significant ones (by the caller's FDR cut) are candidates for drawing, their
    /// label made only when kept.
    mutating func add(x: Double, p: Double, significant isSignificant: Bool, row: Int, label: () -> String) {
        guard p >= 0, p <= 1, !x.isNaN else { return }
        total += 1
        let y = -log10(p)
        if isSignificant {
            significant += 1
            largestSignificantP = max(largestSignificantP ?? p, p)
            let candidate = Point(x: x, y: y, p: p, label: "", row: row)
            if highlights.wouldKeep(candidate) {
                var point = candidate
                point.label = label()
                highlights.add(point)
            }
        }
        guard x.isFinite, y.isFinite else { offScale += 1; return }
        while abs(x) >= Double(columns / 2) * dx { widenX() }
        while y >= Double(rows) * dy { widenY() }
        let column = Int((x / dx).rounded(.down)) + columns / 2
        counts[Int(y / dy) * columns + column] += 1
    }

    /// Doubles the bin width in x: on each side of 0, bins 2k and 2k+1 (counted outward) merge.
    private mutating func widenX() {
        let half = columns / 2
        for row in 0..<rows {
            let base = row * columns
            for k in 0..<(half / 2) {
                counts[base + half + k] = counts[base + half + 2 * k] + counts[base + half + 2 * k + 1]
                counts[base + half - 1 - k] = counts[base + half - 1 - 2 * k] + counts[base + half - 2 - 2 * k]
            }
            for k in (half / 2)..<half {
                counts[base + half + k] = 0
                counts[base + half - 1 - k] = 0
            }
        }
        dx *= 2
    }

    private mutating func widenY() {
        for row in 0..<(rows / 2) {
            for column in 0..<columns {
                counts[row * columns + column] = counts[2 * row * columns + column] + counts[(2 * row + 1) * columns + column]
            }
        }
        for index in (rows / 2 * columns)..<(rows * columns) { counts[index] = 0 }
        dy *= 2
    }

    /// The grid's non-empty cells: x and y ranges and the count.
    var cells: [(x: ClosedRange<Double>, y: ClosedRange<Double>, count: Int)] {
        var out: [(x: ClosedRange<Double>, y: ClosedRange<Double>, count: Int)] = []
        for row in 0..<rows {
            for column in 0..<columns where counts[row * columns + column] > 0 {
                let x0 = Double(column - columns / 2) * dx, y0 = Double(row) * dy
                out.append((x0...(x0 + dx), y0...(y0 + dy), Int(counts[row * columns + column])))
            }
        }
        return out
    }
}
