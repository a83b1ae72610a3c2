/// Streams the values of one matrix element with bounded memory.
///
/// The only way in is `blocks(rows:columns:)`: it walks the element in storage order and yields
/// slabs restricted to the requested rows and column window. What it costs depends on the
/// storage, which callers choose shard axes by: CSR and dense read only the requested rows (a
/// column window still touches every requested row), CSC reads only the window's columns (a row
/// subset still touches every column of the window).
public final class MatrixReader {
    public let info: MatrixInfo
    public let budget: ReadBudget
    let reader: H5Reader
    private var cachedIndptr: [Int]?

    init(reader: H5Reader, info: MatrixInfo, budget: ReadBudget) {
        self.reader = reader
        self.info = info
        self.budget = budget
    }

    /// `indptr` of a sparse element, read once and validated: starts at 0, never decreases,
    /// ends within the stored entries.
    public func indptr() throws(AnnDataError) -> [Int] {
        if let cachedIndptr { return cachedIndptr }
        precondition(info.format != .dense, "indptr() on dense storage")
        let path = info.path + "/indptr"
        let values = try reader.read(path, as: Int64.self)
        guard values.count == info.majorCount + 1 else {
            throw reader.fail(.shapeMismatch, path, "has \(values.count) entries but shape \(info.nRows)×\(info.nCols) needs \(info.majorCount + 1)")
        }
        guard values.first == 0 else {
            throw reader.fail(.corruptSparse, path, "must start at 0, starts at \(values.first ?? -1)")
        }
        var previous: Int64 = 0
        for (position, value) in values.enumerated() {
            if value < previous {
                throw reader.fail(.corruptSparse, path, "not monotone: entry \(position) is \(value) after \(previous)")
            }
            previous = value
        }
        if previous > Int64(info.nnz) {
            throw reader.fail(.corruptSparse, path, "ends at \(previous), past the \(info.nnz) stored entries")
        }
        let result = values.map { Int($0) }
        cachedIndptr = result
        return result
    }

    /// Streams the element. `rows`: ascending, distinct row ids (nil = all rows); `columns`: a
    /// column window (nil = all columns). Index ids in the slabs stay global.
    public func blocks(rows: [Int]? = nil, columns: Range<Int>? = nil) throws(AnnDataError) -> BlockIterator {
        if let rows {
            for (a, b) in zip(rows, rows.dropFirst()) where b <= a {
                throw reader.fail(.wrongType, info.path, "row selection must be ascending and distinct")
            }
            if let first = rows.first, let last = rows.last, first < 0 || last >= info.nRows {
                throw reader.fail(.wrongType, info.path, "row selection outside 0..<\(info.nRows)")
            }
        }
        let window = columns ?? 0..<info.nCols
        guard window.lowerBound >= 0, window.upperBound <= info.nCols else {
            throw reader.fail(.wrongType, info.path, "column window \(window) outside 0..<\(info.nCols)")
        }
        try reader.requireFilters(reader.datasetInfo(info.valuesPath))
        switch info.format {
        case .csr:
            return BlockIterator(try SparseMajorWalk(self, majors: rows, minorWindow: window, axis: .rows))
        case .csc:
            let majors = Array(window)
            return BlockIterator(try SparseMajorWalk(self, majors: majors, minorWindow: nil, axis: .columns,
                                                     minorFilter: rows.map { Self.membership($0, count: info.nRows) }))
        case .dense:
            return BlockIterator(try DenseRowWalk(self, rows: rows ?? Array(0..<info.nRows), columns: window))
        }
    }

    static func membership(_ ids: [Int], count: Int) -> [Bool] {
        var member = [Bool](repeating: false, count: count)
        for id in ids { member[id] = true }
        return member
    }
}

/// The slabs of one streaming pass, in storage order.
public struct BlockIterator {
    private var walk: any SlabWalk
    init(_ walk: any SlabWalk) { self.walk = walk }

    /// The next slab, or nil at the end.
    public mutating func next() throws(AnnDataError) -> Slab? { try walk.next() }
}

protocol SlabWalk {
    mutating func next() throws(AnnDataError) -> Slab?
}

/// Walks a sparse element along its compressed axis. Consecutive majors are read with one
/// hyperslab of `indices`/`data`; nearby runs are merged when the gap is cheaper to read than a
/// separate HDF5 call.
struct SparseMajorWalk: SlabWalk {
    let matrix: MatrixReader
    let axis: SparseSlab.Axis
    let indptr: [Int]
    /// Majors to visit, ascending (all when nil).
    let majors: [Int]?
    let majorCount: Int
    let minorWindow: Range<Int>?
    let minorFilter: [Bool]?
    let indices: H5Dataset
    let data: H5Dataset
    var cursor = 0

    /// Gaps of up to this many entries are read through rather than split into another call.
    static let mergeGap = 4096

    init(_ matrix: MatrixReader, majors: [Int]?, minorWindow: Range<Int>?, axis: SparseSlab.Axis,
         minorFilter: [Bool]? = nil) throws(AnnDataError) {
        self.matrix = matrix
        self.axis = axis
        self.majors = majors
        self.minorWindow = minorWindow == 0..<matrix.info.minorCount ? nil : minorWindow
        self.minorFilter = minorFilter
        indptr = try matrix.indptr()
        majorCount = majors?.count ?? matrix.info.majorCount
        let cache = 32 << 20
        indices = try H5Dataset(matrix.reader, matrix.info.path + "/indices", chunkCacheBytes: cache)
        data = try H5Dataset(matrix.reader, matrix.info.path + "/data", chunkCacheBytes: cache)
        guard indices.shape.count == 1, data.shape.count == 1, indices.shape == data.shape else {
            throw matrix.reader.fail(.shapeMismatch, matrix.info.path + "/indices",
                                     "has shape \(indices.shape) but data has \(data.shape)")
        }
    }

    private func major(_ k: Int) -> Int { majors?[k] ?? k }

    mutating func next() throws(AnnDataError) -> Slab? {
        guard cursor < majorCount else { return nil }
        // Take majors until the entries to hold reach the budget (at least one major).
        let limit = max(1, min(ReadBudget.maxEntriesPerBlock, matrix.budget.bytes / ReadBudget.bytesPerSparseEntry))
        var end = cursor
        var entries = 0
        while end < majorCount {
            let m = major(end)
            let size = indptr[m + 1] - indptr[m]
            if end > cursor && entries + size > limit { break }
            entries += size
            end += 1
        }
        let slab = try readMajors(cursor..<end, entries: entries)
        cursor = end
        return .sparse(slab)
    }

    /// Every index must fall inside the matrix: a tight min/max pass, then the culprit if any.
    private func checkIndices(_ run: [Int32], firstEntry: Int) throws(AnnDataError) {
        var smallest = Int32.max
        var largest = Int32.min
        for value in run {
            smallest = min(smallest, value)
            largest = max(largest, value)
        }
        let minorCount = matrix.info.minorCount
        guard !run.isEmpty, smallest < 0 || Int(largest) >= minorCount else { return }
        let position = run.firstIndex { $0 < 0 || Int($0) >= minorCount }!
        throw matrix.reader.fail(.corruptSparse, matrix.info.path + "/indices",
                                 "entry \(firstEntry + position) is \(run[position]), outside 0..<\(minorCount)")
    }

    private func readMajors(_ range: Range<Int>, entries: Int) throws(AnnDataError) -> SparseSlab {
        var outIndptr = [Int]()
        outIndptr.reserveCapacity(range.count + 1)
        outIndptr.append(0)
        var outIndices = [Int32]()
        var outValues = [Double]()
        outIndices.reserveCapacity(entries)
        outValues.reserveCapacity(entries)
        var ids = [Int]()
        ids.reserveCapacity(range.count)

        var k = range.lowerBound
        while k < range.upperBound {
            // One run: majors whose entry ranges are contiguous or separated by a small gap.
            var last = k
            while last + 1 < range.upperBound,
                  indptr[major(last + 1)] - indptr[major(last) + 1] <= Self.mergeGap {
                last += 1
            }
            let start = indptr[major(k)]
            let stop = indptr[major(last) + 1]
            let runIndices: [Int32] = try indices.read(as: Int32.self, start: [start], count: [stop - start])
            let runValues = try data.readDoubles(matrix.info.dtype, start: [start], count: [stop - start])
            try checkIndices(runIndices, firstEntry: start)
            let contiguous = indptr[major(last) + 1] - indptr[major(k)] == (k...last).reduce(0) { $0 + indptr[major($1) + 1] - indptr[major($1)] }
            if minorWindow == nil && minorFilter == nil && contiguous && k == range.lowerBound && last == range.upperBound - 1 {
                // A full pass: the block is one run with nothing to filter; hand the arrays over.
                return SparseSlab(axis: axis, majorIDs: (k...last).map(major),
                                  indptr: (k...last + 1).map { $0 == last + 1 ? stop - start : indptr[major($0)] - start },
                                  indices: runIndices, values: runValues)
            }
            if minorWindow == nil && minorFilter == nil && contiguous {
                // The run is exactly its majors' entries: copy it whole.
                for j in k...last {
                    ids.append(major(j))
                    outIndptr.append(outIndices.count + indptr[major(j) + 1] - start)
                }
                outIndices.append(contentsOf: runIndices)
                outValues.append(contentsOf: runValues)
            } else if minorWindow == nil && minorFilter == nil {
                // A row subset with gaps read through: copy each selected row's entries whole.
                for j in k...last {
                    let m = major(j)
                    let entries = (indptr[m] - start)..<(indptr[m + 1] - start)
                    outIndices.append(contentsOf: runIndices[entries])
                    outValues.append(contentsOf: runValues[entries])
                    ids.append(m)
                    outIndptr.append(outIndices.count)
                }
            } else {
                for j in k...last {
                    let m = major(j)
                    for position in (indptr[m] - start)..<(indptr[m + 1] - start) {
                        let minor = Int(runIndices[position])
                        if let minorWindow, !minorWindow.contains(minor) { continue }
                        if let minorFilter, !minorFilter[minor] { continue }
                        outIndices.append(runIndices[position])
                        outValues.append(runValues[position])
                    }
                    ids.append(m)
                    outIndptr.append(outIndices.count)
                }
            }
            k = last + 1
        }
        return SparseSlab(axis: axis, majorIDs: ids, indptr: outIndptr, indices: outIndices, values: outValues)
    }
}

/// Walks a dense element in row blocks (aligned to the chunk rows, so each compressed chunk is
/// decoded once); runs of consecutive selected rows are one hyperslab each.
struct DenseRowWalk: SlabWalk {
    let matrix: MatrixReader
    let rows: [Int]
    let columns: Range<Int>
    let dataset: H5Dataset
    let rowsPerBlock: Int
    var cursor = 0

    init(_ matrix: MatrixReader, rows: [Int], columns: Range<Int>) throws(AnnDataError) {
        self.matrix = matrix
        self.rows = rows
        self.columns = columns
        dataset = try H5Dataset(matrix.reader, matrix.info.path, chunkCacheBytes: 64 << 20)
        guard dataset.shape == [matrix.info.nRows, matrix.info.nCols] else {
            throw matrix.reader.fail(.shapeMismatch, matrix.info.path, "has shape \(dataset.shape)")
        }
        var perBlock = max(1, min(ReadBudget.maxEntriesPerBlock, matrix.budget.bytes / 16) / max(1, columns.count))
        if let chunkRows = matrix.info.chunks?.first, chunkRows > 0, perBlock > chunkRows {
            perBlock -= perBlock % chunkRows
        }
        rowsPerBlock = perBlock
    }

    mutating func next() throws(AnnDataError) -> Slab? {
        guard cursor < rows.count else { return nil }
        let block = rows[cursor..<min(rows.count, cursor + rowsPerBlock)]
        cursor += block.count
        let width = columns.count
        var values = [Double]()
        values.reserveCapacity(block.count * width)
        var k = block.startIndex
        while k < block.endIndex {
            var last = k
            while last + 1 < block.endIndex, block[last + 1] == block[last] + 1 { last += 1 }
            if width > 0 {
                values += try dataset.readDoubles(matrix.info.dtype, start: [block[k], columns.lowerBound],
                                                  count: [last - k + 1, width])
            }
            k = last + 1
        }
        return .dense(DenseSlab(rowIDs: Array(block), columns: columns, values: values))
    }
}
