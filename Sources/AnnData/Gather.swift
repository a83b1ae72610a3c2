extension MatrixReader {
    /// The entries of `rows` × `columns`, gathered column-major in memory: what gene-wise tests
    /// need (every cell's value of one gene together). Streams in storage order and transposes
    /// once with a counting sort, so CSR, CSC and dense inputs all give the same slab. Implicit
    /// zeros stay implicit; stored zeros of dense input are dropped too (a zero is a zero).
    /// Memory: about 2 × 12 bytes per non-zero in the selection.
    public func gatherColumns(rows: [Int]? = nil, columns: Range<Int>? = nil) throws(AnnDataError) -> SparseSlab {
        let window = columns ?? 0..<info.nCols
        var rowIDs: [Int32] = []
        var columnIDs: [Int32] = []
        var values: [Double] = []
        var blocks = try blocks(rows: rows, columns: window)
        while let slab = try blocks.next() {
            switch slab {
            case .sparse(let s) where s.axis == .columns:
                // Already column-major (CSC): append in column order, no transposition needed.
                for (k, column) in s.majorIDs.enumerated() {
                    for position in s.indptr[k]..<s.indptr[k + 1] where s.values[position] != 0 {
                        rowIDs.append(s.indices[position])
                        columnIDs.append(Int32(column))
                        values.append(s.values[position])
                    }
                }
            case .sparse(let s):
                for (k, row) in s.majorIDs.enumerated() {
                    for position in s.indptr[k]..<s.indptr[k + 1] where s.values[position] != 0 {
                        rowIDs.append(Int32(row))
                        columnIDs.append(s.indices[position])
                        values.append(s.values[position])
                    }
                }
            case .dense(let d):
                let width = d.columns.count
                for (k, row) in d.rowIDs.enumerated() {
                    for offset in 0..<width where d.values[k * width + offset] != 0 {
                        rowIDs.append(Int32(row))
                        columnIDs.append(Int32(d.columns.lowerBound + offset))
                        values.append(d.values[k * width + offset])
                    }
                }
            }
        }
        return Self.columnMajor(rowIDs: rowIDs, columnIDs: columnIDs, values: values, columns: window)
    }

    /// Counting sort of (row, column, value) triples by column; within a column, entries keep
    /// their input order (ascending rows for row-major input).
    static func columnMajor(rowIDs: [Int32], columnIDs: [Int32], values: [Double], columns: Range<Int>) -> SparseSlab {
        var indptr = [Int](repeating: 0, count: columns.count + 1)
        for column in columnIDs { indptr[Int(column) - columns.lowerBound + 1] += 1 }
        for k in 0..<columns.count { indptr[k + 1] += indptr[k] }
        var next = indptr
        var sortedRows = [Int32](repeating: 0, count: values.count)
        var sortedValues = [Double](repeating: 0, count: values.count)
        for position in 0..<values.count {
            let k = Int(columnIDs[position]) - columns.lowerBound
            sortedRows[next[k]] = rowIDs[position]
            sortedValues[next[k]] = values[position]
            next[k] += 1
        }
        return SparseSlab(axis: .columns, majorIDs: Array(columns), indptr: indptr, indices: sortedRows, values: sortedValues)
    }
}
