import AnnData
import Foundation

/// sctrial 1.0.0 `add_log1p_cpm_layer` (REFERENCE-SEMANTICS §2.1) as a per-cell operation for
/// streaming: library sizes in one validating pass, then each stored value transformed on the fly.
///
/// Sparse input follows sctrial's sparse path, `log1p(x · (scale / L))`; dense input its dense path,
/// `log1p((x / L) · scale)` (the two may differ by an ulp). Cells with L = 0 give 0 everywhere.
/// Implicit zeros stay zeros (log1p(0) = 0). Library sizes are summed in float64: identical to
/// sctrial's float32 sums for integer counts below 2^24, and for float64 input summed in sctrial's
/// order (CSR: scipy's reduceat, dense: numpy's pairwise row sum; CSC: sequentially in column order,
/// which can differ from scipy's CSR-converted sum by an ulp for non-integer values).
public enum Log1pCPM {
    public static let defaultScale = 1e6

    /// sctrial: `scale` must be finite and > 0.
    public static func validate(scale: Double) throws(AnalysisError) {
        guard scale.isFinite, scale > 0 else {
            throw AnalysisError("log1p-CPM scale must be a finite positive number, got \(scale)")
        }
    }

    /// Row sums over all genes of `matrix` (the counts), one pass. Any stored value that is
    /// non-finite or negative is an error naming `file`, the element and the entry. With
    /// `genes`, only the genes marked true count (normalising after a gene filter, as scanpy's
    /// filter_genes then a CPM of the kept genes).
    public static func librarySizes(matrix: MatrixReader, file: String, genes: [Bool]? = nil) throws(AnalysisError) -> [Double] {
        let info = matrix.info
        var sizes = [Double](repeating: 0, count: info.nRows)
        func bad(_ row: Int, _ column: Int, _ value: Double) -> AnalysisError {
            let what = value.isFinite ? "negative (\(value))" : "\(value)"
            return AnalysisError("\(file): \(info.name): stored value at cell \(row), gene \(column) is \(what); "
                                 + "log1p-CPM needs finite, non-negative counts")
        }
        do {
            var blocks = try matrix.blocks()
            while let slab = try blocks.next() {
                switch slab {
                case .sparse(let s) where s.axis == .rows && genes == nil:
                    try s.values.withUnsafeBufferPointer { buffer throws(AnalysisError) in
                        for (k, row) in s.majorIDs.enumerated() {
                            let range = s.indptr[k]..<s.indptr[k + 1]
                            for position in range where !(buffer[position].isFinite && buffer[position] >= 0) {
                                throw bad(row, Int(s.indices[position]), buffer[position])
                            }
                            sizes[row] = rowSum(UnsafeBufferPointer(rebasing: buffer[range]))
                        }
                    }
                case .sparse(let s):
                    // Summed sequentially in storage order (scipy's CSR order would need every row's
                    // values at once; see `rowSum`); exact for integer counts.
                    for (k, major) in s.majorIDs.enumerated() {
                        for position in s.indptr[k]..<s.indptr[k + 1] {
                            let value = s.values[position]
                            let (row, column) = s.axis == .rows ? (major, Int(s.indices[position])) : (Int(s.indices[position]), major)
                            guard value.isFinite, value >= 0 else { throw bad(row, column, value) }
                            if genes?[column] ?? true { sizes[row] += value }
                        }
                    }
                case .dense(let d):
                    let width = d.columns.count
                    try d.values.withUnsafeBufferPointer { buffer throws(AnalysisError) in
                        for (k, row) in d.rowIDs.enumerated() {
                            let slice = UnsafeBufferPointer(rebasing: buffer[(k * width)..<((k + 1) * width)])
                            for (offset, value) in slice.enumerated() where !(value.isFinite && value >= 0) {
                                throw bad(row, d.columns.lowerBound + offset, value)
                            }
                            if let genes {
                                sizes[row] = slice.enumerated().reduce(0) { genes[d.columns.lowerBound + $1.offset] ? $0 + $1.element : $0 }
                            } else {
                                sizes[row] = GeneSetScoring.numpySum(slice)
                            }
                        }
                    }
                }
            }
        } catch let error as AnalysisError {
            throw error
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        } catch {
            throw AnalysisError("\(file): \(info.name): \(error)")
        }
        return sizes
    }

    /// scipy's CSR row sum (`np.add.reduceat` over the row's stored values): the first value plus
    /// numpy's pairwise sum of the rest. Exact, whatever the order, for integer counts < 2^53.
    public static func rowSum(_ stored: UnsafeBufferPointer<Double>) -> Double {
        guard let first = stored.first else { return 0 }
        return first + GeneSetScoring.numpySum(UnsafeBufferPointer(rebasing: stored.dropFirst()))
    }

    /// Opens `element` of the file at `path` and computes its library sizes.
    public static func librarySizes(path: String, element: String = "layers/counts",
                                    budget: ReadBudget = .default) throws(AnalysisError) -> [Double] {
        let matrix: MatrixReader
        do {
            matrix = try AnnDataFile(path: path).matrix(element, budget: budget)
        } catch {
            throw AnalysisError(error)
        }
        return try librarySizes(matrix: matrix, file: path)
    }

    /// The factor sctrial multiplies a sparse cell's counts by: `scale / L`, 0 for an empty cell.
    @inline(__always)
    public static func factor(library: Double, scale: Double = defaultScale) -> Double {
        library == 0 ? 0 : scale / library
    }

    /// Sparse path: `log1p(x · (scale / L))`; 0 when L = 0.
    @inline(__always)
    public static func value(_ x: Double, library: Double, scale: Double = defaultScale) -> Double {
        library == 0 ? 0 : log1p(x * (scale / library))
    }

    /// Dense path: `log1p((x / L) · scale)`; 0 when L = 0.
    @inline(__always)
    public static func denseValue(_ x: Double, library: Double, scale: Double = defaultScale) -> Double {
        library == 0 ? 0 : log1p(x / library * scale)
    }

    /// The slab's stored values transformed, in the slab's own storage order (sparse: aligned with
    /// `values`, `indices`; dense: row-major like `values`). `libraries` is indexed by global row.
    /// Sparse slabs use the sparse path, dense slabs the dense path, as sctrial does per storage.
    public static func transformedValues(_ slab: Slab, libraries: [Double], scale: Double = defaultScale) -> [Double] {
        switch slab {
        case .sparse(let s) where s.axis == .rows:
            var out = [Double](repeating: 0, count: s.nnz)
            for (k, row) in s.majorIDs.enumerated() {
                let f = factor(library: libraries[row], scale: scale)
                for position in s.indptr[k]..<s.indptr[k + 1] {
                    out[position] = log1p(s.values[position] * f)
                }
            }
            return out
        case .sparse(let s):
            var out = [Double](repeating: 0, count: s.nnz)
            for position in 0..<s.nnz {
                out[position] = log1p(s.values[position] * factor(library: libraries[Int(s.indices[position])], scale: scale))
            }
            return out
        case .dense(let d):
            let width = d.columns.count
            var out = [Double](repeating: 0, count: d.values.count)
            for (k, row) in d.rowIDs.enumerated() {
                let library = libraries[row]
                for offset in 0..<width {
                    out[k * width + offset] = denseValue(d.values[k * width + offset], library: library, scale: scale)
                }
            }
            return out
        }
    }

    /// Calls `body(row, column, value)` with the transformed value of every stored entry of `slab`
    /// (implicit zeros are skipped: they stay 0).
    public static func forEachTransformedEntry(_ slab: Slab, libraries: [Double], scale: Double = defaultScale,
                                               _ body: (Int, Int, Double) throws -> Void) rethrows {
        let transformed = transformedValues(slab, libraries: libraries, scale: scale)
        var position = 0
        try slab.forEachEntry { row, column, _ in
            try body(row, column, transformed[position])
            position += 1
        }
    }
}
