/// How a matrix element is stored.
public enum MatrixFormat: String, Sendable, Codable {
    case dense, csr, csc
}

/// Metadata of one matrix element (`X`, a layer, `raw/X`), read without touching its values.
public struct MatrixInfo: Sendable, Codable, Equatable {
    /// Element name as users say it: `X`, `layers/counts`, `raw/X`.
    public let name: String
    /// HDF5 path of the element.
    public let path: String
    public let format: MatrixFormat
    public let dtype: ElementType
    public let nRows: Int
    public let nCols: Int
    /// Stored entries: `data` length for sparse, rows × columns for dense.
    public let nnz: Int
    /// Element type of `indices`/`indptr` for sparse storage.
    public let indexDType: ElementType?
    /// Chunk shape of the values dataset (`data`, or the dense array); nil when contiguous.
    public let chunks: [Int]?
    /// Filters on the values dataset, e.g. `gzip`, `shuffle+gzip`; nil when uncompressed.
    public let compression: String?

    enum CodingKeys: String, CodingKey {
        case name, path, format, dtype, nnz, chunks, compression
        case nRows = "n_rows", nCols = "n_cols", indexDType = "index_dtype"
    }

    /// Every key is written, absent ones as `null`, so scripts can rely on them.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(path, forKey: .path)
        try container.encode(format, forKey: .format)
        try container.encode(dtype, forKey: .dtype)
        try container.encode(nRows, forKey: .nRows)
        try container.encode(nCols, forKey: .nCols)
        try container.encode(nnz, forKey: .nnz)
        try container.encode(indexDType, forKey: .indexDType)
        try container.encode(chunks, forKey: .chunks)
        try container.encode(compression, forKey: .compression)
    }

    var valuesPath: String { format == .dense ? path : path + "/data" }
    /// Rows for CSR and dense, columns for CSC: the axis `indptr` runs along.
    var majorCount: Int { format == .csc ? nCols : nRows }
    var minorCount: Int { format == .csc ? nRows : nCols }
}

/// A block of a sparse matrix in compressed form. `axis` says whether the compressed (major)
/// axis is rows (as CSR) or columns (as CSC); ids in `majorIDs` and `indices` are global.
public struct SparseSlab: Sendable, Equatable {
    public enum Axis: Sendable { case rows, columns }
    public let axis: Axis
    /// Global ids of the stored rows (or columns), ascending.
    public let majorIDs: [Int]
    /// `indptr[k]..<indptr[k+1]` are the entries of `majorIDs[k]`.
    public let indptr: [Int]
    public let indices: [Int32]
    public let values: [Double]

    public var nnz: Int { values.count }
}

/// A block of a dense matrix: the rows `rowIDs` restricted to `columns`, row-major.
public struct DenseSlab: Sendable, Equatable {
    public let rowIDs: [Int]
    public let columns: Range<Int>
    public let values: [Double]
}

/// One block of a streaming pass, in the storage's own orientation (no transposition on the
/// hot path): CSR and dense give row blocks, CSC gives column blocks.
public enum Slab: Sendable, Equatable {
    case sparse(SparseSlab)
    case dense(DenseSlab)

    /// Values held (stored entries, or every cell of a dense block).
    public var storedCount: Int {
        switch self {
        case .sparse(let slab): slab.values.count
        case .dense(let slab): slab.values.count
        }
    }

    /// Calls `body(row, column, value)` for every stored entry (implicit zeros are skipped).
    public func forEachEntry(_ body: (Int, Int, Double) throws -> Void) rethrows {
        switch self {
        case .sparse(let slab):
            for (k, major) in slab.majorIDs.enumerated() {
                for position in slab.indptr[k]..<slab.indptr[k + 1] {
                    let minor = Int(slab.indices[position])
                    if slab.axis == .rows {
                        try body(major, minor, slab.values[position])
                    } else {
                        try body(minor, major, slab.values[position])
                    }
                }
            }
        case .dense(let slab):
            let width = slab.columns.count
            for (k, row) in slab.rowIDs.enumerated() {
                for (offset, column) in slab.columns.enumerated() {
                    try body(row, column, slab.values[k * width + offset])
                }
            }
        }
    }
}

/// How much memory one streaming pass may hold at once. A single row (or column) larger than the
/// budget is still read whole: the alternative is not reading it at all.
public struct ReadBudget: Sendable, Equatable {
    public let bytes: Int
    public init(bytes: Int) { self.bytes = max(bytes, 1) }
    public init(megabytes: Int) { self.init(bytes: megabytes << 20) }
    public static let `default` = ReadBudget(megabytes: 256)

    /// Memory per stored sparse entry while a block is held: value (8) + index (4), plus the
    /// raw bytes HDF5 reads before converting.
    static let bytesPerSparseEntry = 16

    /// Blocks beyond ~128K entries gain nothing (libhdf5's per-call cost is already amortised):
    /// a pass reuses one block's few MB, which stay in cache, where bigger blocks first-touch
    /// (kernel-zero) tens of MB.
    static let maxEntriesPerBlock = 1 << 17
}
