import AnnData
import Testing

/// Row subsets and column windows must give exactly the entries of a full read, for every
/// storage (dense, CSR, CSC), dtype and compression in the fixtures.
@Suite struct StreamingTests {
    static let cases: [(String, String)] = Fixtures.fileNames.flatMap { name in
        (Fixtures.expected.files[name]?.matrices.keys.sorted() ?? []).map { (name, $0 == "raw.X" ? "raw/X" : $0) }
    }

    @Test(arguments: cases)
    func subsetsAgreeWithAFullRead(_ file: String, _ matrixName: String) throws {
        let data = try AnnDataFile(path: Fixtures.path(file))
        let full = try data.matrix(matrixName).denseRows()
        let reader = try data.matrix(matrixName, budget: ReadBudget(bytes: 1))
        let info = reader.info
        // Every third row plus a run of consecutive rows: exercises run merging and gaps.
        let rows = Array(Set(stride(from: 0, to: info.nRows, by: 3)).union(min(4, info.nRows)..<min(9, info.nRows))).sorted()
        let window = (info.nCols / 4)..<(info.nCols * 3 / 4)
        let subset = try reader.denseRows(rows: rows, columns: window)
        let selected = Set(rows)
        for r in 0..<info.nRows {
            for c in 0..<info.nCols {
                let want = selected.contains(r) && window.contains(c) ? full[r][c] : 0
                #expect(subset[r][c] == want, "\(file) \(matrixName) [\(r), \(c)]")
                if subset[r][c] != want { return }
            }
        }
    }

    @Test(arguments: cases)
    func gatheredColumnsAgreeWithAFullRead(_ file: String, _ matrixName: String) throws {
        let data = try AnnDataFile(path: Fixtures.path(file))
        let full = try data.matrix(matrixName).denseRows()
        let reader = try data.matrix(matrixName, budget: ReadBudget(bytes: 1))
        let rows = Array(stride(from: 1, to: reader.info.nRows, by: 2))
        let window = (reader.info.nCols / 3)..<reader.info.nCols
        let slab = try reader.gatherColumns(rows: rows, columns: window)
        #expect(slab.axis == .columns)
        #expect(slab.majorIDs == Array(window))
        var gathered = [[Double]](repeating: [Double](repeating: 0, count: reader.info.nCols), count: reader.info.nRows)
        for (k, column) in slab.majorIDs.enumerated() {
            let rowsOfColumn = slab.indices[slab.indptr[k]..<slab.indptr[k + 1]]
            #expect(zip(rowsOfColumn, rowsOfColumn.dropFirst()).allSatisfy { $0 < $1 }, "rows ascending within a column")
            for position in slab.indptr[k]..<slab.indptr[k + 1] {
                gathered[Int(slab.indices[position])][column] = slab.values[position]
            }
        }
        let selected = Set(rows)
        for r in 0..<reader.info.nRows {
            for c in 0..<reader.info.nCols {
                let want = selected.contains(r) && window.contains(c) ? full[r][c] : 0
                if gathered[r][c] != want {
                    Issue.record("\(file) \(matrixName) [\(r), \(c)]: \(gathered[r][c]) != \(want)")
                    return
                }
            }
        }
    }

    static let exactInFloat: Set<ElementType> = [.float32, .int8, .int16, .uint8, .uint16, .bool]

    /// The one-pass column-major gather (DE's) must hold exactly a full read's entries, rows
    /// ascending within a column, with counts given or counted, at the stored precision; tiny
    /// budgets make every read piece and sorting batch boundary come up.
    @Test(arguments: cases)
    func columnMajorGatherAgreesWithAFullRead(_ file: String, _ matrixName: String) throws {
        let data = try AnnDataFile(path: Fixtures.path(file))
        let full = try data.matrix(matrixName).denseRows()
        for budget in [1, 1 << 12, 1 << 20] {
            let reader = try data.matrix(matrixName, budget: ReadBudget(bytes: budget))
            let info = reader.info
            let rows = Array(Set(stride(from: 0, to: info.nRows, by: 3)).union(min(4, info.nRows)..<min(9, info.nRows))).sorted()
            let window = (info.nCols / 4)..<(info.nCols * 3 / 4 + 1)
            let counts = try reader.storedCountsPerColumn(rows: rows)
            #expect((counts != nil) == (info.format == .csr), "\(file) \(matrixName): exact counts come from CSR")
            for given in [counts?[window], nil] {
                let gathered = try reader.gatherColumnMajor(rows: rows, columns: window, counts: given)
                let (indptr, gatheredRows, values): ([Int], [Int32], [Double])
                switch gathered {
                case .float(let slab):
                    #expect(Self.exactInFloat.contains(info.dtype), "\(info.dtype) gathered as Float")
                    (indptr, gatheredRows, values) = (slab.indptr, slab.rows, slab.values.map(Double.init))
                case .double(let slab):
                    #expect(!Self.exactInFloat.contains(info.dtype), "\(info.dtype) gathered as Double")
                    (indptr, gatheredRows, values) = (slab.indptr, slab.rows, slab.values)
                }
                #expect(indptr.count == window.count + 1 && gatheredRows.count == values.count && indptr.last == values.count)
                var dense = [[Double]](repeating: [Double](repeating: 0, count: info.nCols), count: info.nRows)
                for k in 0..<window.count {
                    let column = gatheredRows[indptr[k]..<indptr[k + 1]]
                    #expect(zip(column, column.dropFirst()).allSatisfy { $0 < $1 }, "rows ascending within a column")
                    for position in indptr[k]..<indptr[k + 1] { dense[Int(gatheredRows[position])][window.lowerBound + k] = values[position] }
                }
                if let counts {
                    #expect(Array(counts[window]) == (0..<window.count).map { indptr[$0 + 1] - indptr[$0] })
                }
                let selected = Set(rows)
                for r in 0..<info.nRows {
                    for c in 0..<info.nCols where dense[r][c] != (selected.contains(r) && window.contains(c) ? full[r][c] : 0) {
                        Issue.record("\(file) \(matrixName) budget \(budget) [\(r), \(c)]: \(dense[r][c]) != \(full[r][c])")
                        return
                    }
                }
            }
        }
    }

    /// Counts that do not match the file (given from elsewhere, or the file changed) are an
    /// error naming the element, never a column spilling into the next one.
    @Test func columnMajorGatherRefusesWrongCounts() throws {
        let name = try #require(Fixtures.fileNames.first { Fixtures.expected.files[$0]?.matrices["X"]?.format == "csr" })
        let reader = try AnnDataFile(path: Fixtures.path(name)).matrix("X")
        let counts = try #require(try reader.storedCountsPerColumn(rows: nil))
        let busiest = try #require(counts.indices.max { counts[$0] < counts[$1] })
        for change in [-1, 1] {
            var wrong = counts
            wrong[busiest] += change
            let error = #expect(throws: AnnDataError.self) {
                try reader.gatherColumnMajor(rows: nil, columns: 0..<reader.info.nCols, counts: wrong[...])
            }
            #expect(error?.description.contains("/X/indices") == true, "\(String(describing: error))")
        }
    }

    @Test func blocksHonourTheBudget() throws {
        let name = try #require(Fixtures.fileNames.first { Fixtures.expected.files[$0]?.matrices["X"]?.format == "csr" })
        let data = try AnnDataFile(path: Fixtures.path(name))
        let reader = try data.matrix("X", budget: ReadBudget(bytes: 1 << 16))
        let indptr = try reader.indptr()
        let limit = (1 << 16) / 16
        var blocks = try reader.blocks()
        var covered = 0
        while let slab = try blocks.next() {
            guard case .sparse(let s) = slab else { Issue.record("CSR must stream as sparse"); return }
            #expect(s.axis == .rows)
            #expect(s.nnz <= limit || s.majorIDs.count == 1)
            #expect(s.majorIDs == Array(covered..<(covered + s.majorIDs.count)))
            covered += s.majorIDs.count
            #expect(s.indptr.last == s.nnz)
        }
        #expect(covered == reader.info.nRows)
        #expect(indptr.count == reader.info.nRows + 1)
    }

    @Test func selectionsAreValidated() throws {
        let name = try #require(Fixtures.fileNames.first)
        let reader = try AnnDataFile(path: Fixtures.path(name)).matrix("X")
        #expect(throws: AnnDataError.self) { try reader.blocks(rows: [3, 1]) }
        #expect(throws: AnnDataError.self) { try reader.blocks(rows: [reader.info.nRows]) }
        #expect(throws: AnnDataError.self) { try reader.blocks(columns: 0..<(reader.info.nCols + 1)) }
    }
}
