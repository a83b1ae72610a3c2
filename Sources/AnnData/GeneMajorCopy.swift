import CHDF5
import Foundation

/// A gene-major (CSC) copy of a matrix, made once so that shards over features read only their
/// own columns: a CSR file can answer a column window only by reading every row.
///
/// Writing takes two passes over the source with bounded memory. The first counts the entries of
/// each column, which fixes where every column's entries go. The file is then created with its
/// datasets' space reserved, closed, mapped, and the second pass puts each entry straight into
/// its column's next free slot. Streaming the source in row order leaves the rows of each column
/// ascending. Explicit zeros of a sparse source are kept (the counting pass then needs only
/// `indices`, half the bytes); zeros of a dense source are not stored.
public enum GeneMajorCopy {
    /// What a staged copy holds. `bytes` is the size of the file written.
    public struct Summary: Sendable, Codable, Equatable {
        public let nRows: Int
        public let nCols: Int
        public let nnz: Int
        public let bytes: Int
        public let valueType: ElementType

        enum CodingKeys: String, CodingKey {
            case nnz, bytes
            case nRows = "n_rows", nCols = "n_cols", valueType = "value_type"
        }
    }

    /// Source dtypes whose every value float32 holds exactly; the rest are stored as float64
    /// (exact for float64, 32-bit integers and 64-bit integers up to 2^53).
    static let exactInFloat32: Set<ElementType> = [.float32, .int8, .uint8, .int16, .uint16]

    /// Writes a CSC copy of `matrix` (dense, CSR or CSC) to `path`: group `X` with anndata's
    /// `csc_matrix` encoding and datasets `data`, `indices`, `indptr`, written under a temporary
    /// name beside `path` and renamed into place, so `path` never holds a partial copy. Resident
    /// memory follows the source's `ReadBudget`, not the matrix size: the source's blocks, buffers
    /// of at most a quarter budget, the copy's mapped pages (handed back to the page cache after
    /// every budget's worth of writes) and a few integers per column. `path` may not be the
    /// source file itself. `progress` gets the fraction done (0...1) after every block.
    public static func write(_ matrix: MatrixReader, to path: String,
                             progress: ((Double) -> Void)? = nil) throws(AnnDataError) -> Summary {
        let info = matrix.info
        var source = stat(), target = stat()
        if stat(matrix.reader.fileName, &source) == 0, stat(path, &target) == 0,
           source.st_dev == target.st_dev, source.st_ino == target.st_ino {
            throw AnnDataError(.unreadable, file: path, path: "", "is the file being copied: the copy would replace it")
        }
        let valueType: ElementType = exactInFloat32.contains(info.dtype) ? .float32 : .float64
        let indexType: ElementType = info.nRows <= Int(Int32.max) ? .int32 : .int64
        // Counting is the lighter pass (CSR: `indices` only; nothing written); CSC needs none.
        let countingShare = info.format == .csc ? 0.0 : 1.0 / 3
        progress?(0)
        let columnStarts = try columnStarts(of: matrix) { progress?($0 * countingShare) }
        let temporary = temporaryPath(beside: path)
        let layout = Layout(path: path, temporary: temporary, nRows: info.nRows, columnStarts: columnStarts,
                            valueType: valueType, indexType: indexType)
        let bytes: Int
        do throws(AnnDataError) {
            let offsets = try layout.create()
            bytes = try layout.fill(offsets: offsets, from: matrix) { progress?(countingShare + $0 * (1 - countingShare)) }
            guard rename(temporary, path) == 0 else {
                throw AnnDataError(.unreadable, file: path, path: "", "cannot rename \(temporary) into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        progress?(1)
        return Summary(nRows: info.nRows, nCols: info.nCols, nnz: layout.nnz, bytes: bytes, valueType: valueType)
    }

    /// Opens a staged copy for streaming (format `.csc`), checked against the shape of the matrix
    /// it was made from: a missing, truncated, foreign or stale file fails here, naming the file,
    /// rather than in the middle of a shard.
    public static func open(_ path: String, expectedRows: Int, expectedCols: Int,
                            budget: ReadBudget = .default) throws(AnnDataError) -> MatrixReader {
        let reader = try H5Reader(path: path)
        guard reader.kind(of: "/X") == .group else {
            throw reader.fail(.missingElement, "/X", "not a staged gene-major copy: no X group")
        }
        let info = try AnnDataFile.sparseInfo(reader, name: "X", path: "/X")
        guard info.format == .csc else {
            throw reader.fail(.unsupportedEncoding, "/X", "a staged copy is csc_matrix, found \(info.format.rawValue)")
        }
        guard info.nRows == expectedRows, info.nCols == expectedCols else {
            throw reader.fail(.shapeMismatch, "/X",
                              "staged copy is \(info.nRows)×\(info.nCols) but the matrix is \(expectedRows)×\(expectedCols): stale or made from another file")
        }
        let matrix = MatrixReader(reader: reader, info: info, budget: budget)
        let end = try matrix.indptr().last ?? 0
        guard end == info.nnz else {
            throw reader.fail(.corruptSparse, "/X/indptr", "ends at \(end) but /X/data holds \(info.nnz) entries")
        }
        return matrix
    }

    /// `path`'s directory, so the final rename stays within one filesystem and is atomic.
    private static func temporaryPath(beside path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = ".\(url.lastPathComponent).\(getpid())-\(UInt32.random(in: 0...UInt32.max)).partial"
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }

    // MARK: - Counting

    /// Where each column's entries start in the copy (`nCols + 1` entries, the last = nnz).
    private static func columnStarts(of matrix: MatrixReader, progress: (Double) -> Void) throws(AnnDataError) -> [Int] {
        let info = matrix.info
        switch info.format {
        case .csc:
            return try matrix.indptr()
        case .csr:
            var counts = try countCSRColumns(matrix, progress: progress)
            for column in 0..<info.nCols { counts[column + 1] += counts[column] }
            return counts
        case .dense:
            var counts = [Int](repeating: 0, count: info.nCols + 1)
            var blocks = try matrix.blocks()
            while let slab = try blocks.next() {
                guard case .dense(let d) = slab else { continue }
                let width = d.columns.count
                for k in d.rowIDs.indices {
                    for offset in 0..<width where d.values[k * width + offset] != 0 {
                        counts[d.columns.lowerBound + offset + 1] += 1
                    }
                }
                progress(Double((d.rowIDs.last ?? 0) + 1) / Double(max(1, info.nRows)))
            }
            for column in 0..<info.nCols { counts[column + 1] += counts[column] }
            return counts
        }
    }

    /// Entries per column of a CSR element, in `counts[column + 1]`, from `indices` alone.
    private static func countCSRColumns(_ matrix: MatrixReader, progress: (Double) -> Void) throws(AnnDataError) -> [Int] {
        let info = matrix.info
        let path = info.path + "/indices"
        let end = try matrix.indptr().last ?? 0
        try matrix.reader.requireFilters(matrix.reader.datasetInfo(path))
        let indices = try H5Dataset(matrix.reader, path, chunkCacheBytes: 32 << 20)
        let step = max(1, min(ReadBudget.maxEntriesPerBlock, matrix.budget.bytes / ReadBudget.bytesPerSparseEntry))
        var counts = [Int](repeating: 0, count: info.nCols + 1)
        var start = 0
        while start < end {
            let run = try indices.read(as: Int32.self, start: [start], count: [min(step, end - start)])
            let nCols = info.nCols
            let bad: Int? = counts.withUnsafeMutableBufferPointer { counts in
                for (position, column) in run.enumerated() {
                    guard column >= 0, Int(column) < nCols else { return position }
                    counts[Int(column) + 1] += 1
                }
                return nil
            }
            if let bad {
                throw matrix.reader.fail(.corruptSparse, path, "entry \(start + bad) is \(run[bad]), outside 0..<\(nCols)")
            }
            start += run.count
            progress(Double(start) / Double(end))
        }
        return counts
    }

    // MARK: - Writing

    /// The copy's file: its name, its shape and where each column's entries go.
    private struct Layout {
        let path: String
        let temporary: String
        let nRows: Int
        let columnStarts: [Int]
        let valueType: ElementType
        let indexType: ElementType

        var nCols: Int { columnStarts.count - 1 }
        var nnz: Int { columnStarts[nCols] }

        /// File offsets of the `data` and `indices` storage; nil when the copy has no entries.
        struct Offsets {
            let values: Int
            let indices: Int
        }

        func fail(_ element: String, _ detail: String) -> AnnDataError {
            AnnDataError(.unreadable, file: path, path: element, detail)
        }

        /// Writes the HDF5 structure with `indptr` filled in and the space of `data` and `indices`
        /// reserved but not written, then closes the file so its metadata is complete on disk.
        func create() throws(AnnDataError) -> Offsets? {
            let writer = try H5Writer(creating: temporary, reportingAs: path)
            let offsets = try createElements(writer)
            try writer.close()
            return offsets
        }

        /// Every dataset handle is released on return, before the file is closed.
        private func createElements(_ writer: H5Writer) throws(AnnDataError) -> Offsets? {
            try writer.createGroup("/X")
            try writer.setAttribute("/X", "encoding-type", string: "csc_matrix")
            try writer.setAttribute("/X", "encoding-version", string: "0.1.0")
            try writer.setAttribute("/X", "shape", integers: [nRows, nCols])
            let values = try writer.createContiguousDataset("/X/data", type: valueType, count: nnz)
            let indices = try writer.createContiguousDataset("/X/indices", type: indexType, count: nnz)
            let indptr = try writer.createContiguousDataset("/X/indptr", type: .int64, count: nCols + 1)
            try writer.write(columnStarts.map { Int64($0) }, to: indptr, path: "/X/indptr")
            guard nnz > 0 else { return nil }
            guard let valuesOffset = writer.fileOffset(of: values), let indicesOffset = writer.fileOffset(of: indices) else {
                throw fail("/X/data", "libhdf5 allocated no contiguous storage for \(nnz) entries")
            }
            return Offsets(values: valuesOffset, indices: indicesOffset)
        }

        /// Maps the reserved storage, places every entry of `matrix` in it, and flushes the file to
        /// disk. Returns the file's size.
        func fill(offsets: Offsets?, from matrix: MatrixReader, progress: (Double) -> Void) throws(AnnDataError) -> Int {
            let fd = Foundation.open(temporary, O_RDWR)
            guard fd >= 0 else { throw fail("", "cannot reopen \(temporary): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var status = stat()
            guard fstat(fd, &status) == 0 else { throw fail("", "cannot stat \(temporary): \(String(cString: strerror(errno)))") }
            let size = Int(status.st_size)
            if let offsets {
                let valuesEnd = offsets.values + nnz * valueType.byteSize
                let indicesEnd = offsets.indices + nnz * indexType.byteSize
                guard max(valuesEnd, indicesEnd) <= size else {
                    throw fail("/X/data", "the file is \(size) bytes, shorter than its datasets' storage (\(max(valuesEnd, indicesEnd)))")
                }
                let page = Int(sysconf(Int32(_SC_PAGESIZE)))
                let start = min(offsets.values, offsets.indices) / page * page
                let length = max(valuesEnd, indicesEnd) - start
                guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(start)),
                      base != UnsafeMutableRawPointer(bitPattern: -1) else {
                    throw fail("/X/data", "cannot map \(temporary): \(String(cString: strerror(errno)))")
                }
                defer { munmap(base, length) }
                let values = base + (offsets.values - start)
                let rows = base + (offsets.indices - start)
                // Written pages stay in the page cache (dirty until written back) when unmapped from
                // the process, so resident memory stays bounded by the budget, not the copy's size.
                let release = { _ = madvise(base, length, MADV_DONTNEED) }
                switch (valueType, indexType) {
                case (.float32, .int32): try place(matrix, Scatter<Float, Int32>(values: values, rows: rows, columnStarts: columnStarts, budget: matrix.budget), release, progress)
                case (.float32, _): try place(matrix, Scatter<Float, Int64>(values: values, rows: rows, columnStarts: columnStarts, budget: matrix.budget), release, progress)
                case (_, .int32): try place(matrix, Scatter<Double, Int32>(values: values, rows: rows, columnStarts: columnStarts, budget: matrix.budget), release, progress)
                default: try place(matrix, Scatter<Double, Int64>(values: values, rows: rows, columnStarts: columnStarts, budget: matrix.budget), release, progress)
                }
                guard msync(base, length, MS_SYNC) == 0 else {
                    throw fail("/X/data", "cannot write \(temporary): \(String(cString: strerror(errno)))")
                }
            }
            guard fsync(fd) == 0 else { throw fail("", "cannot write \(temporary): \(String(cString: strerror(errno)))") }
            return size
        }

        /// The second pass: streams `matrix` and hands each block to `scatter`, calling `release`
        /// after every budget's worth of written bytes, then checks that every column got exactly
        /// the entries the counting pass found.
        private func place<Value, Index>(_ matrix: MatrixReader, _ scatter: Scatter<Value, Index>, _ release: () -> Void,
                                         _ progress: (Double) -> Void) throws(AnnDataError) {
            let source = matrix.info
            let changed = "than the counting pass found (was the file rewritten while staging?)"
            let entryBytes = MemoryLayout<Value>.size + MemoryLayout<Index>.size
            var unreleased = 0
            var blocks = try matrix.blocks()
            while let slab = try blocks.next() {
                if let column = scatter.place(slab) {
                    throw matrix.reader.fail(.corruptSparse, source.path, "column \(column) has more entries \(changed)")
                }
                let (last, entries) = switch slab {
                case .sparse(let s): (s.majorIDs.last ?? 0, s.nnz)
                case .dense(let d): (d.rowIDs.last ?? 0, d.values.count)
                }
                unreleased += entries * entryBytes
                if unreleased >= matrix.budget.bytes {
                    release()
                    unreleased = 0
                }
                progress(Double(last + 1) / Double(max(1, source.majorCount)))
            }
            if let column = scatter.finish() {
                throw matrix.reader.fail(.corruptSparse, source.path, "column \(column) has a different number of entries \(changed)")
            }
        }
    }

    /// Puts each entry at its column's next free slot in the mapped bytes of `data` and `indices`.
    /// Entries wait in a small buffer per column and reach the mapping up to 64 at a time: stored
    /// one by one, nearly every entry missed the TLB somewhere in the mapping, and staging a 1.2 GB
    /// CSR file took twice as long. The mapped storage has HDF5's byte alignment, so it is written
    /// unaligned.
    private final class Scatter<Value: BinaryFloatingPoint, Index: FixedWidthInteger> {
        let values: UnsafeMutableRawPointer
        let rows: UnsafeMutableRawPointer
        /// The next free slot of each column, and where each column's entries end.
        let next: UnsafeMutableBufferPointer<Int>
        let ends: UnsafeMutableBufferPointer<Int>
        /// Entries per column held back; `lanes` × columns of each, `waiting[c]` of them in use.
        let lanes: Int
        let waitingValues: UnsafeMutableBufferPointer<Value>
        let waitingRows: UnsafeMutableBufferPointer<Index>
        let waiting: UnsafeMutableBufferPointer<Int>

        /// The buffers take at most a quarter of `budget`: 64 lanes per column for 20,000 genes
        /// is 10 MB; with very many columns there are fewer lanes, down to 1.
        init(values: UnsafeMutableRawPointer, rows: UnsafeMutableRawPointer, columnStarts: [Int], budget: ReadBudget) {
            self.values = values
            self.rows = rows
            let nCols = columnStarts.count - 1
            next = .allocate(capacity: nCols)
            _ = next.initialize(from: columnStarts.dropLast())
            ends = .allocate(capacity: nCols)
            _ = ends.initialize(from: columnStarts.dropFirst())
            lanes = max(1, min(64, budget.bytes / 4 / max(1, nCols * (MemoryLayout<Value>.size + MemoryLayout<Index>.size))))
            waitingValues = .allocate(capacity: nCols * lanes)
            waitingRows = .allocate(capacity: nCols * lanes)
            waiting = .allocate(capacity: nCols)
            waiting.initialize(repeating: 0)
        }

        deinit {
            next.deallocate()
            ends.deallocate()
            waitingValues.deallocate()
            waitingRows.deallocate()
            waiting.deallocate()
        }

        @inline(__always)
        private func put(row: Int, column: Int, value: Double) -> Bool {
            let held = waiting[column]
            waitingValues[column &* lanes &+ held] = Value(value)
            waitingRows[column &* lanes &+ held] = Index(truncatingIfNeeded: row)
            waiting[column] = held &+ 1
            return held &+ 1 < lanes || flush(column)
        }

        /// Moves a column's waiting entries to the mapping; false when they do not fit.
        private func flush(_ column: Int) -> Bool {
            let count = waiting[column]
            let slot = next[column]
            guard count <= ends[column] - slot else { return false }
            (values + slot * MemoryLayout<Value>.size).copyMemory(
                from: waitingValues.baseAddress! + column * lanes, byteCount: count * MemoryLayout<Value>.size)
            (rows + slot * MemoryLayout<Index>.size).copyMemory(
                from: waitingRows.baseAddress! + column * lanes, byteCount: count * MemoryLayout<Index>.size)
            next[column] = slot + count
            waiting[column] = 0
            return true
        }

        /// Places every stored entry of a block (dense zeros skipped); returns a column that
        /// overflowed its counted entries, if any.
        func place(_ slab: Slab) -> Int? {
            switch slab {
            case .dense(let d):
                let width = d.columns.count
                for (k, row) in d.rowIDs.enumerated() {
                    for offset in 0..<width {
                        let value = d.values[k &* width &+ offset]
                        if value != 0, !put(row: row, column: d.columns.lowerBound + offset, value: value) {
                            return d.columns.lowerBound + offset
                        }
                    }
                }
            case .sparse(let s) where s.axis == .rows:
                for (k, row) in s.majorIDs.enumerated() {
                    for position in s.indptr[k]..<s.indptr[k + 1] {
                        let column = Int(s.indices[position])
                        if !put(row: row, column: column, value: s.values[position]) { return column }
                    }
                }
            case .sparse(let s):
                // A CSC source: rows within a column are usually ascending already (scipy's
                // canonical form) but not required to be.
                for (k, column) in s.majorIDs.enumerated() {
                    let entries = s.indptr[k]..<s.indptr[k + 1]
                    if zip(entries, entries.dropFirst()).allSatisfy({ s.indices[$0] <= s.indices[$1] }) {
                        for position in entries where !put(row: Int(s.indices[position]), column: column, value: s.values[position]) {
                            return column
                        }
                    } else {
                        for position in entries.sorted(by: { s.indices[$0] < s.indices[$1] })
                        where !put(row: Int(s.indices[position]), column: column, value: s.values[position]) {
                            return column
                        }
                    }
                }
            }
            return nil
        }

        /// Flushes what is still waiting; returns a column whose entries overflowed or fell short
        /// of the counted ones, if any.
        func finish() -> Int? {
            next.indices.first { !flush($0) || next[$0] != ends[$0] }
        }
    }
}
