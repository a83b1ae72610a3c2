import Dispatch
import Synchronization

/// A value type a column-major gather stores: `Float` when the stored type converts to it
/// exactly (float32 and small integers: half the memory of Double), `Double` otherwise.
public protocol GatheredValue: BinaryFloatingPoint, Sendable {}
extension Float: GatheredValue {}
extension Double: GatheredValue {}

extension ElementType {
    /// Every value of this type is exact as a Float.
    var fitsFloat: Bool { [.float32, .int8, .int16, .uint8, .uint16, .bool].contains(self) }
}

/// Some columns of a matrix over a set of rows, column-major: column `columns.lowerBound + k`
/// holds `rows[indptr[k]..<indptr[k + 1]]` (ascending global row ids) and their stored values.
public struct ColumnMajorSlab<Value: GatheredValue>: Sendable {
    public let columns: Range<Int>
    public let indptr: [Int]
    public let rows: [Int32]
    public let values: [Value]
}

/// A gathered window at the precision its stored type needs.
public enum ColumnWindow: Sendable {
    case float(ColumnMajorSlab<Float>)
    case double(ColumnMajorSlab<Double>)
}

extension MatrixReader {
    /// Stored entries of each column over `rows` (ascending; nil = all), from one pass over a CSR
    /// element's `indices`; nil for other storage, where windows are sized by estimate instead.
    /// `threads` threads count interleaved pieces, each with its own reads and counts.
    public func storedCountsPerColumn(rows: [Int]?, threads: Int = 1) throws(AnnDataError) -> [Int]? {
        guard info.format == .csr else { return nil }
        return try csrCountsPerColumn(rows: rows, threads: threads)
    }

    private func csrCountsPerColumn(rows: [Int]?, threads: Int) throws(AnnDataError) -> [Int] {
        let pieceCount = try RowPieces(self, rows: rows).pieces.count
        let lanes = max(1, min(threads, pieceCount))
        let columns = info.nCols
        nonisolated(unsafe) let matrix = self
        let perLane = Mutex([Result<[Int], AnnDataError>?](repeating: nil, count: lanes))
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            let counted = Result { () throws(AnnDataError) -> [Int] in
                let walk = try RowPieces(matrix, rows: rows)
                var counts = [Int](repeating: 0, count: columns)
                try counts.withUnsafeMutableBufferPointer { (counts) throws(AnnDataError) in
                    for piece in stride(from: lane, to: walk.pieces.count, by: lanes).map({ walk.pieces[$0] }) {
                        let indices = try walk.readIndices(piece)
                        walk.forEachSelectedEntry(piece) { position, _ in counts[Int(indices[position])] += 1 }
                    }
                }
                return counts
            }
            perLane.withLock { $0[lane] = counted }
        }
        var total = [Int](repeating: 0, count: columns)
        for counted in perLane.withLock({ $0 }) {
            for (column, count) in try counted!.get().enumerated() { total[column] += count }
        }
        return total
    }

    /// Peak bytes per stored entry while `gatherColumnMajor` builds a window: the result alone
    /// from CSR; through `gatherColumns` (blocks held, then sorted) otherwise.
    public var gatheredBytesPerEntry: Int { info.format == .csr ? 4 + (info.dtype.fitsFloat ? 4 : 8) : 28 }

    /// The columns `columns` over `rows` (ascending; nil = all), column-major at the stored
    /// precision. From CSR this is one pass that puts each entry straight into its column, so
    /// memory is the result (8 or 12 bytes per entry) plus one read block; `counts` (this
    /// window's slice of `storedCountsPerColumn(rows:)`) sizes it exactly, else that counting
    /// pass comes first. Other storage goes through `gatherColumns`.
    public func gatherColumnMajor(rows: [Int]?, columns: Range<Int>, counts: ArraySlice<Int>? = nil) throws(AnnDataError) -> ColumnWindow {
        guard columns.lowerBound >= 0, columns.upperBound <= info.nCols else {
            throw reader.fail(.wrongType, info.path, "column window \(columns) outside 0..<\(info.nCols)")
        }
        if info.dtype.fitsFloat {
            return .float(try gatherColumnMajor(rows: rows, columns: columns, counts: counts, as: Float.self))
        }
        return .double(try gatherColumnMajor(rows: rows, columns: columns, counts: counts, as: Double.self))
    }

    private func gatherColumnMajor<Value: GatheredValue>(rows: [Int]?, columns: Range<Int>, counts: ArraySlice<Int>?,
                                                         as: Value.Type) throws(AnnDataError) -> ColumnMajorSlab<Value> {
        guard info.format == .csr else {
            let slab = try gatherColumns(rows: rows, columns: columns)
            return ColumnMajorSlab(columns: columns, indptr: slab.indptr, rows: slab.indices, values: slab.values.map { Value($0) })
        }
        let window = columns
        let windowCounts: ArraySlice<Int>
        if let counts { windowCounts = counts } else { windowCounts = try csrCountsPerColumn(rows: rows, threads: 1)[window] }
        precondition(windowCounts.count == window.count, "counts must cover the window")
        var indptr = [Int](repeating: 0, count: window.count + 1)
        for (k, count) in windowCounts.enumerated() { indptr[k + 1] = indptr[k] + count }
        let walk = try RowPieces(self, rows: rows)
        let total = indptr[window.count]
        var next = Array(indptr.dropLast())
        var failure: AnnDataError?
        var complete = false
        var values: [Value] = []
        // Every slot is written exactly once, so the arrays start uninitialised.
        let sortedRows = [Int32](unsafeUninitializedCapacity: total) { rowsOut, rowsWritten in
            values = [Value](unsafeUninitializedCapacity: total) { valuesOut, valuesWritten in
                do throws(AnnDataError) {
                    complete = try next.withUnsafeMutableBufferPointer { (next) throws(AnnDataError) -> Bool in
                        try indptr.withUnsafeBufferPointer { (ends) throws(AnnDataError) -> Bool in
                            let ends = UnsafeBufferPointer(rebasing: ends.dropFirst())
                            let sink = ColumnSink(window: window, next: next.baseAddress!, ends: ends.baseAddress!,
                                                  rows: rowsOut.baseAddress, values: valuesOut.baseAddress)
                            switch info.dtype {
                            case .float64: return try walk.scatter(Double.self, into: sink) { Value($0) }
                            case .float32: return try walk.scatter(Float.self, into: sink) { Value($0) }
                            case .int8: return try walk.scatter(Int8.self, into: sink) { Value($0) }
                            case .int16: return try walk.scatter(Int16.self, into: sink) { Value($0) }
                            case .int32: return try walk.scatter(Int32.self, into: sink) { Value($0) }
                            case .int64: return try walk.scatter(Int64.self, into: sink) { Value($0) }
                            case .uint8, .bool: return try walk.scatter(UInt8.self, into: sink) { Value($0) }
                            case .uint16: return try walk.scatter(UInt16.self, into: sink) { Value($0) }
                            case .uint32: return try walk.scatter(UInt32.self, into: sink) { Value($0) }
                            case .uint64: return try walk.scatter(UInt64.self, into: sink) { Value($0) }
                            }
                        }
                    }
                    complete = complete && zip(next, indptr.dropFirst()).allSatisfy(==)
                } catch {
                    failure = error
                }
                // Nothing may be read from a half-filled window: fill it before failing.
                if !complete { for k in 0..<total { valuesOut.initializeElement(at: k, to: 0) } }
                valuesWritten = total
            }
            if !complete { for k in 0..<total { rowsOut.initializeElement(at: k, to: 0) } }
            rowsWritten = total
        }
        if let failure { throw failure }
        if !complete {
            throw reader.fail(.corruptSparse, info.path + "/indices", "its column counts changed while the window \(window) was gathered")
        }
        return ColumnMajorSlab(columns: window, indptr: indptr, rows: sortedRows, values: values)
    }
}

/// Where a scatter puts a window's entries: column slot k's next free position and its end.
private struct ColumnSink<Value> {
    let window: Range<Int>
    let next: UnsafeMutablePointer<Int>
    let ends: UnsafePointer<Int>
    let rows: UnsafeMutablePointer<Int32>?
    let values: UnsafeMutablePointer<Value>?
}

/// The rows in play of a CSR element as pieces read with one hyperslab each: consecutive rows
/// (and rows separated by gaps cheaper to read through than to split), up to a read block of
/// entries unless one row is larger. The read buffers are reused from piece to piece: fresh
/// ones each block would be page-faulted in again every time.
private struct RowPieces {
    struct Piece {
        /// Positions in the row list.
        let rows: Range<Int>
        /// Entries start..<stop of the element.
        let start: Int
        let stop: Int
    }

    let matrix: MatrixReader
    let rows: [Int]?
    let indptr: [Int]
    let pieces: [Piece]
    let indices: H5Dataset
    let data: H5Dataset
    let indexScratch = ScratchBuffer()
    let valueScratch = ScratchBuffer()

    init(_ matrix: MatrixReader, rows: [Int]?) throws(AnnDataError) {
        try matrix.checkRowSelection(rows)
        self.matrix = matrix
        self.rows = rows
        let indptr = try matrix.indptr()
        self.indptr = indptr
        try matrix.reader.requireFilters(matrix.reader.datasetInfo(matrix.info.valuesPath))
        let cache = 32 << 20
        indices = try H5Dataset(matrix.reader, matrix.info.path + "/indices", chunkCacheBytes: cache)
        data = try H5Dataset(matrix.reader, matrix.info.path + "/data", chunkCacheBytes: cache)
        guard indices.shape.count == 1, data.shape.count == 1, indices.shape == data.shape,
              indices.shape[0] >= indptr.last ?? 0 else {
            throw matrix.reader.fail(.shapeMismatch, matrix.info.path + "/indices",
                                     "has shape \(indices.shape), data \(data.shape), but indptr ends at \(indptr.last ?? 0)")
        }
        let limit = max(1, min(ReadBudget.maxEntriesPerBlock, matrix.budget.bytes / ReadBudget.bytesPerSparseEntry))
        let count = rows?.count ?? matrix.info.nRows
        let row = { (k: Int) in rows?[k] ?? k }
        var pieces: [Piece] = []
        var k = 0
        while k < count {
            let start = indptr[row(k)]
            var last = k
            while last + 1 < count, indptr[row(last + 1)] - indptr[row(last) + 1] <= SparseMajorWalk.mergeGap,
                  indptr[row(last + 1) + 1] - start <= limit {
                last += 1
            }
            pieces.append(Piece(rows: k..<(last + 1), start: start, stop: indptr[row(last) + 1]))
            k = last + 1
        }
        self.pieces = pieces
    }

    /// The piece's column indices, checked to lie inside the matrix (valid until the next read).
    func readIndices(_ piece: Piece) throws(AnnDataError) -> UnsafeBufferPointer<Int32> {
        let count = piece.stop - piece.start
        let raw = indexScratch.reserve(bytes: max(1, count) * 4)
        if count > 0 { try indices.read(into: raw, type: Int32.h5Type, start: [piece.start], count: [count]) }
        let buffer = UnsafeBufferPointer(start: raw.assumingMemoryBound(to: Int32.self), count: count)
        try matrix.checkMinorIndices(buffer, firstEntry: piece.start)
        for k in piece.rows {
            let row = rows?[k] ?? k
            try matrix.checkDistinct(buffer, entries: (indptr[row] - piece.start)..<(indptr[row + 1] - piece.start), major: row,
                                     firstEntry: piece.start)
        }
        return buffer
    }

    /// The piece's stored values in their stored type (valid until the next read).
    func readValues<T: H5NativeType>(_ piece: Piece, as: T.Type) throws(AnnDataError) -> UnsafeBufferPointer<T> {
        let count = piece.stop - piece.start
        let raw = valueScratch.reserve(bytes: max(1, count) * MemoryLayout<T>.stride)
        if count > 0 { try data.read(into: raw, type: T.h5Type, start: [piece.start], count: [count]) }
        return UnsafeBufferPointer(start: raw.assumingMemoryBound(to: T.self), count: count)
    }

    /// Puts every selected entry inside the sink's window at its column's next position, in
    /// row order. False when a column would overflow its count (counts from elsewhere, or a file
    /// changed under us, must not let one column spill into the next).
    ///
    /// Straight scattering would touch a random cache line of the (gigabyte-sized) output for
    /// every entry. Instead a batch of rows (about 32 entries per column of the window) is first
    /// sorted by column in a small local buffer that stays in cache, then each column's run is
    /// copied out in one piece.
    func scatter<T: H5NativeType, Value>(_: T.Type, into sink: ColumnSink<Value>, _ convert: (T) -> Value) throws(AnnDataError) -> Bool {
        guard let rowsOut = sink.rows, let valuesOut = sink.values else { return true }
        let lower = sink.window.lowerBound, width = sink.window.count
        let batchEntries = min(1 << 21, max(1 << 16, 32 * width))
        let starts = UnsafeMutableBufferPointer<Int>.allocate(capacity: width + 1)
        let batchRows = UnsafeMutablePointer<Int32>.allocate(capacity: batchEntries)
        let batchValues = UnsafeMutablePointer<Value>.allocate(capacity: batchEntries)
        defer {
            starts.deallocate()
            batchRows.deallocate()
            batchValues.deallocate()
        }
        return try indptr.withUnsafeBufferPointer { (indptr) throws(AnnDataError) -> Bool in
            for piece in pieces {
                let indices = try readIndices(piece)
                let raw = try readValues(piece, as: T.self)
                var first = piece.rows.lowerBound
                while first < piece.rows.upperBound {
                    // A batch: rows first..<last, at most batchEntries entries unless one row is larger.
                    let row = { (k: Int) in self.rows?[k] ?? k }
                    var last = first + 1
                    while last < piece.rows.upperBound, indptr[row(last) + 1] - indptr[row(first)] <= batchEntries { last += 1 }
                    let batchStart = indptr[row(first)] &- piece.start
                    let batchSize = indptr[row(last - 1) + 1] &- piece.start &- batchStart
                    let batchRowsOut = batchSize <= batchEntries ? batchRows : UnsafeMutablePointer<Int32>.allocate(capacity: batchSize)
                    let batchValuesOut = batchSize <= batchEntries ? batchValues : UnsafeMutablePointer<Value>.allocate(capacity: batchSize)
                    defer {
                        if batchSize > batchEntries {
                            batchRowsOut.deallocate()
                            batchValuesOut.deallocate()
                        }
                    }
                    // Count the batch's entries per column, then place them (row order kept).
                    starts.initialize(repeating: 0)
                    for k in first..<last {
                        let r = row(k)
                        for position in (indptr[r] &- piece.start)..<(indptr[r + 1] &- piece.start) {
                            let slot = Int(indices[position]) &- lower
                            if UInt(bitPattern: slot) < UInt(width) { starts[slot &+ 1] &+= 1 }
                        }
                    }
                    for slot in 0..<width { starts[slot + 1] &+= starts[slot] }
                    for k in first..<last {
                        let r = row(k)
                        let row32 = Int32(truncatingIfNeeded: r)
                        for position in (indptr[r] &- piece.start)..<(indptr[r + 1] &- piece.start) {
                            let slot = Int(indices[position]) &- lower
                            if UInt(bitPattern: slot) < UInt(width) {
                                let at = starts[slot]
                                batchRowsOut[at] = row32
                                batchValuesOut[at] = convert(raw[position])
                                starts[slot] = at &+ 1
                            }
                        }
                    }
                    // starts[slot] is now the end of the slot's run; copy each run out.
                    var begin = 0
                    for slot in 0..<width {
                        let end = starts[slot]
                        let count = end &- begin
                        if count > 0 {
                            let at = sink.next[slot]
                            guard at &+ count <= sink.ends[slot] else { return false }
                            (rowsOut + at).update(from: batchRowsOut + begin, count: count)
                            (valuesOut + at).update(from: batchValuesOut + begin, count: count)
                            sink.next[slot] = at &+ count
                        }
                        begin = end
                    }
                    first = last
                }
            }
            return true
        }
    }

    /// Calls `body(position in the piece, row)` for each entry of the piece's selected rows, in
    /// storage order (gaps read through are skipped).
    @inline(__always)
    func forEachSelectedEntry(_ piece: Piece, _ body: (Int, Int) -> Void) {
        for k in piece.rows {
            let row = rows?[k] ?? k
            for position in (indptr[row] - piece.start)..<(indptr[row + 1] - piece.start) { body(position, row) }
        }
    }
}
