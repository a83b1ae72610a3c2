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
        try checkRowSelection(rows)
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

    /// Every stored value in storage order, a block at a time (the buffer is reused: valid only
    /// during the call). A sparse element's pass reads only `data` (up to indptr's end): a scan
    /// of the values needs no indices, and every read that uses them checks them.
    public func forEachValueBlock(_ body: (UnsafeBufferPointer<Double>) -> Void) throws(AnnDataError) {
        guard info.format != .dense else {
            var blocks = try blocks()
            while let slab = try blocks.next() {
                switch slab {
                case .sparse(let s): s.values.withUnsafeBufferPointer(body)
                case .dense(let d): d.values.withUnsafeBufferPointer(body)
                }
            }
            return
        }
        try reader.requireFilters(reader.datasetInfo(info.valuesPath))
        let stored = try indptr().last ?? 0
        let data = try H5Dataset(reader, info.valuesPath, chunkCacheBytes: 32 << 20)
        guard data.shape.count == 1, data.shape[0] >= stored else {
            throw reader.fail(.shapeMismatch, info.valuesPath, "has shape \(data.shape) but indptr ends at \(stored)")
        }
        let step = max(1, min(ReadBudget.maxEntriesPerBlock, budget.bytes / ReadBudget.bytesPerSparseEntry))
        // Fresh arrays each block would be page-faulted in again every time: both buffers are reused.
        let raw = ScratchBuffer()
        let widened = ScratchBuffer()
        func pass<T: H5NativeType>(_: T.Type, _ convert: (T) -> Double) throws(AnnDataError) {
            var start = 0
            while start < stored {
                let count = min(step, stored - start)
                let source = raw.reserve(bytes: count * MemoryLayout<T>.stride)
                try data.read(into: source, type: T.h5Type, start: [start], count: [count])
                if T.self == Double.self {
                    body(UnsafeBufferPointer(start: source.assumingMemoryBound(to: Double.self), count: count))
                } else {
                    let values = widened.reserve(bytes: count * 8).assumingMemoryBound(to: Double.self)
                    let typed = source.assumingMemoryBound(to: T.self)
                    for k in 0..<count { values[k] = convert(typed[k]) }
                    body(UnsafeBufferPointer(start: values, count: count))
                }
                start += count
            }
        }
        switch info.dtype {
        case .float64: try pass(Double.self) { $0 }
        case .float32: try pass(Float.self) { Double($0) }
        case .int8: try pass(Int8.self) { Double($0) }
        case .int16: try pass(Int16.self) { Double($0) }
        case .int32: try pass(Int32.self) { Double($0) }
        case .int64: try pass(Int64.self) { Double($0) }
        case .uint8, .bool: try pass(UInt8.self) { Double($0) }
        case .uint16: try pass(UInt16.self) { Double($0) }
        case .uint32: try pass(UInt32.self) { Double($0) }
        case .uint64: try pass(UInt64.self) { Double($0) }
        }
    }

    /// A row selection must be ascending, distinct and inside the matrix.
    func checkRowSelection(_ rows: [Int]?) throws(AnnDataError) {
        guard let rows else { return }
        for (a, b) in zip(rows, rows.dropFirst()) where b <= a {
            throw reader.fail(.wrongType, info.path, "row selection must be ascending and distinct")
        }
        if let first = rows.first, let last = rows.last, first < 0 || last >= info.nRows {
            throw reader.fail(.wrongType, info.path, "row selection outside 0..<\(info.nRows)")
        }
    }

    /// A run of stored minor indices must fall inside the matrix: a tight min/max pass, then the
    /// culprit if any (`firstEntry`: the run's position in the element, for the message).
    func checkMinorIndices(_ run: UnsafeBufferPointer<Int32>, firstEntry: Int) throws(AnnDataError) {
        var smallest = Int32.max
        var largest = Int32.min
        for value in run {
            smallest = min(smallest, value)
            largest = max(largest, value)
        }
        let minorCount = info.minorCount
        guard !run.isEmpty, smallest < 0 || Int(largest) >= minorCount else { return }
        let position = run.firstIndex { $0 < 0 || Int($0) >= minorCount }!
        throw reader.fail(.corruptSparse, info.path + "/indices",
                          "entry \(firstEntry + position) is \(run[position]), outside 0..<\(minorCount)")
    }

    /// Per minor index, the last major seen storing it (allocated at the first unsorted major).
    private var stamps: [Int] = []

    /// No major may store a minor index twice: scipy would sum the two, every count per cell or
    /// gene here would be off (and a group could hold more values than cells). Sorted majors, the
    /// usual case, cost one comparison per entry; an unsorted one is checked with a stamp per
    /// minor index. `entries`: positions in `run`, whose first is entry `firstEntry` of the element.
    func checkDistinct(_ run: UnsafeBufferPointer<Int32>, entries: Range<Int>, major: Int, firstEntry: Int) throws(AnnDataError) {
        guard entries.count > 1 else { return }
        var k = entries.lowerBound + 1
        while k < entries.upperBound, run[k] > run[k - 1] { k += 1 }
        if k == entries.upperBound { return }
        if stamps.isEmpty { stamps = [Int](repeating: -1, count: info.minorCount) }
        for position in entries {
            let minor = Int(run[position])
            if stamps[minor] == major {
                let what = info.format == .csc ? "column \(major) stores row \(minor)" : "row \(major) stores column \(minor)"
                throw reader.fail(.corruptSparse, info.path + "/indices", "\(what) twice (entry \(firstEntry + position))")
            }
            stamps[minor] = major
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

    /// A run's raw indices and stored values, reused from block to block: fresh arrays each
    /// block would be zero-filled by the kernel each time.
    private let scratchIndices = ScratchBuffer()
    private let scratchValues = ScratchBuffer()
    /// Values widened to Double in a tight loop, then appended with one copy (appending a lazy
    /// map checks the array's uniqueness at every element).
    private let scratchWidened = ScratchBuffer()
    /// The arrays of the slab last returned. Once the caller has let go of that slab they are
    /// uniquely referenced again and refilled in place, so a pass keeps touching the same pages
    /// (on some machines a first-touch fault costs more than reading the bytes); a caller that
    /// keeps its slabs makes copy-on-write give the next block fresh arrays.
    private var outIDs: [Int] = []
    private var outIndptr: [Int] = []
    private var outIndices: [Int32] = []
    private var outValues: [Double] = []

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

    /// Reads one run (majors `run`, entries start..<start+count) into the scratch buffers and
    /// appends its majors' entries (only those inside the minor window / filter when there is
    /// one), widening only those to Double.
    private func appendRun(_ run: ClosedRange<Int>, start: Int, count: Int, ids: inout [Int], indptr outIndptr: inout [Int],
                           indices outIndices: inout [Int32], values outValues: inout [Double]) throws(AnnDataError) {
        guard count > 0 else {
            for j in run {
                ids.append(major(j))
                outIndptr.append(outIndices.count)
            }
            return
        }
        let dtype = matrix.info.dtype
        let rawIndices = scratchIndices.reserve(bytes: count * 4)
        let rawValues = scratchValues.reserve(bytes: count * dtype.byteSize)
        try indices.read(into: rawIndices, type: Int32.h5Type, start: [start], count: [count])
        let runIndices = UnsafeBufferPointer(start: rawIndices.assumingMemoryBound(to: Int32.self), count: count)
        try matrix.checkMinorIndices(runIndices, firstEntry: start)
        for j in run {
            let m = major(j)
            try matrix.checkDistinct(runIndices, entries: (indptr[m] - start)..<(indptr[m + 1] - start), major: m, firstEntry: start)
        }
        let filtered = minorWindow != nil || minorFilter != nil
        func keep<T: H5NativeType>(_: T.Type, _ convert: (T) -> Double) throws(AnnDataError) {
            try data.read(into: rawValues, type: T.h5Type, start: [start], count: [count])
            let runValues = UnsafeBufferPointer(start: rawValues.assumingMemoryBound(to: T.self), count: count)
            // Unfiltered entries are copied a stretch of adjacent majors at a time.
            var pending = 0..<0
            func flush() {
                outIndices.append(contentsOf: UnsafeBufferPointer(rebasing: runIndices[pending]))
                let widened = scratchWidened.reserve(bytes: pending.count * 8).bindMemory(to: Double.self, capacity: pending.count)
                for k in 0..<pending.count { widened[k] = convert(runValues[pending.lowerBound + k]) }
                outValues.append(contentsOf: UnsafeBufferPointer(start: widened, count: pending.count))
            }
            for j in run {
                let m = major(j)
                let entries = (indptr[m] - start)..<(indptr[m + 1] - start)
                if !filtered {
                    if entries.lowerBound != pending.upperBound {
                        flush()
                        pending = entries.lowerBound..<entries.lowerBound
                    }
                    pending = pending.lowerBound..<entries.upperBound
                    ids.append(m)
                    outIndptr.append(outIndices.count + pending.count)
                    continue
                }
                for position in entries {
                    let minor = Int(runIndices[position])
                    if let minorWindow, !minorWindow.contains(minor) { continue }
                    if let minorFilter, !minorFilter[minor] { continue }
                    outIndices.append(runIndices[position])
                    outValues.append(convert(runValues[position]))
                }
                ids.append(m)
                outIndptr.append(outIndices.count)
            }
            flush()
        }
        switch dtype {
        case .float64: try keep(Double.self) { $0 }
        case .float32: try keep(Float.self) { Double($0) }
        case .int8: try keep(Int8.self) { Double($0) }
        case .int16: try keep(Int16.self) { Double($0) }
        case .int32: try keep(Int32.self) { Double($0) }
        case .int64: try keep(Int64.self) { Double($0) }
        case .uint8, .bool: try keep(UInt8.self) { Double($0) }
        case .uint16: try keep(UInt16.self) { Double($0) }
        case .uint32: try keep(UInt32.self) { Double($0) }
        case .uint64: try keep(UInt64.self) { Double($0) }
        }
    }

    /// `array` emptied, its storage kept when nothing else holds it.
    private static func reused<T>(_ array: inout [T]) -> [T] {
        var taken: [T] = []
        swap(&taken, &array)
        taken.removeAll(keepingCapacity: true)
        return taken
    }

    private mutating func readMajors(_ range: Range<Int>, entries: Int) throws(AnnDataError) -> SparseSlab {
        var ids = Self.reused(&outIDs)
        var outIndptr = Self.reused(&self.outIndptr)
        var outIndices = Self.reused(&self.outIndices)
        var outValues = Self.reused(&self.outValues)
        // A column window of a CSR block keeps about its share of the entries.
        let expected = minorWindow.map { entries * $0.count / max(1, matrix.info.minorCount) + entries / 64 + 64 } ?? entries
        ids.reserveCapacity(range.count)
        outIndptr.reserveCapacity(range.count + 1)
        outIndices.reserveCapacity(min(entries, expected))
        outValues.reserveCapacity(min(entries, expected))
        outIndptr.append(0)

        var k = range.lowerBound
        while k < range.upperBound {
            // One run: majors whose entry ranges are contiguous or separated by a small gap.
            var last = k
            while last + 1 < range.upperBound,
                  indptr[major(last + 1)] - indptr[major(last) + 1] <= Self.mergeGap {
                last += 1
            }
            let start = indptr[major(k)]
            try appendRun(k...last, start: start, count: indptr[major(last) + 1] - start, ids: &ids, indptr: &outIndptr,
                          indices: &outIndices, values: &outValues)
            k = last + 1
        }
        (outIDs, self.outIndptr, self.outIndices, self.outValues) = (ids, outIndptr, outIndices, outValues)
        return SparseSlab(axis: axis, majorIDs: ids, indptr: outIndptr, indices: outIndices, values: outValues)
    }
}

/// Raw memory reused from block to block (grown, never shrunk; freed with its owner).
final class ScratchBuffer {
    private var pointer: UnsafeMutableRawPointer?
    private var capacity = 0

    /// At least `bytes` bytes, 8-byte aligned; the contents are undefined.
    func reserve(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity || pointer == nil {
            pointer?.deallocate()
            capacity = max(bytes, 2 * capacity, 64)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        }
        return pointer!
    }

    deinit { pointer?.deallocate() }
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
