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
