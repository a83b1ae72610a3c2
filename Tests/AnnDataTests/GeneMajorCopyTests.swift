import AnnData
import Foundation
import Testing

/// A staged gene-major copy must hold exactly the source's values, whatever the source's storage,
/// dtype, index width or compression, and must never leave a partial file at its path.
@Suite struct GeneMajorCopyTests {
    static let cases: [(String, String)] = Fixtures.fileNames.flatMap { name in
        (Fixtures.expected.files[name]?.matrices.keys.sorted() ?? []).map { (name, $0 == "raw.X" ? "raw/X" : $0) }
    }

    /// A fresh directory per test, removed afterwards.
    private final class Scratch {
        let directory: URL
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("gene-major-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func contents() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() }
    }

    /// The first cell where two dense matrices differ, described; nil when they are equal.
    private func difference(_ got: [[Double]], _ want: [[Double]]) -> String? {
        for (r, (a, b)) in zip(got, want).enumerated() {
            if let c = a.indices.first(where: { a[$0] != b[$0] }) { return "[\(r), \(c)]: \(a[c]) != \(b[c])" }
        }
        return got.count == want.count ? nil : "\(got.count) rows != \(want.count)"
    }

    private func dense(_ slab: SparseSlab, nRows: Int, nCols: Int) -> [[Double]] {
        var matrix = [[Double]](repeating: [Double](repeating: 0, count: nCols), count: nRows)
        Slab.sparse(slab).forEachEntry { row, column, value in matrix[row][column] += value }
        return matrix
    }

    /// Budgets for writing: one byte (every block one row or column, entries written one by one),
    /// 2,880 bytes (blocks of 180 entries, 2 or 3 entries buffered per column of 30) and the default.
    static let budgets = [ReadBudget(bytes: 1), ReadBudget(bytes: 2880), .default]

    private func stage(_ file: String, _ matrixName: String, in scratch: Scratch,
                       budget: ReadBudget = ReadBudget(bytes: 1)) throws -> (MatrixReader, MatrixReader, GeneMajorCopy.Summary) {
        let data = try AnnDataFile(path: Fixtures.path(file))
        let path = scratch.path("staged.h5")
        let summary = try GeneMajorCopy.write(data.matrix(matrixName, budget: budget), to: path)
        let source = try data.matrix(matrixName, budget: ReadBudget(bytes: 1))
        let staged = try GeneMajorCopy.open(path, expectedRows: source.info.nRows, expectedCols: source.info.nCols,
                                            budget: ReadBudget(bytes: 1))
        return (source, staged, summary)
    }

    @Test(arguments: cases, budgets)
    func stagedCopyHoldsTheSameValues(_ fixture: (String, String), budget: ReadBudget) throws {
        let (file, matrixName) = fixture
        let scratch = try Scratch()
        let (source, staged, summary) = try stage(file, matrixName, in: scratch, budget: budget)
        let info = source.info
        #expect(staged.info.format == .csc)
        #expect(summary.nRows == info.nRows && summary.nCols == info.nCols)
        let exactInFloat32: [ElementType] = [.float32, .int8, .uint8, .int16, .uint16]
        #expect(summary.valueType == (exactInFloat32.contains(info.dtype) ? .float32 : .float64))
        #expect(staged.info.dtype == summary.valueType)
        #expect(staged.info.indexDType == .int32)
        #expect(staged.info.nnz == summary.nnz)
        let size = try FileManager.default.attributesOfItem(atPath: scratch.path("staged.h5"))[.size] as? Int
        #expect(summary.bytes == size)

        let full = try source.denseRows()
        #expect(try difference(staged.denseRows(), full) == nil, "\(file) \(matrixName): full read")
        let stored = full.joined().filter { $0 != 0 }.count
        // Sparse sources keep explicit zeros; dense zeros are not stored.
        #expect(info.format == .dense ? summary.nnz == stored : summary.nnz == (try source.indptr().last ?? 0))

        let rows = Array(Set(stride(from: 0, to: info.nRows, by: 3)).union(min(4, info.nRows)..<min(9, info.nRows))).sorted()
        let window = (info.nCols / 4)..<(info.nCols * 3 / 4)
        #expect(try difference(staged.denseRows(rows: rows, columns: window), source.denseRows(rows: rows, columns: window)) == nil,
                "\(file) \(matrixName): blocks over a row subset and column window")
        for (subset, columns) in [(nil, window), (rows, nil), (rows, window)] as [([Int]?, Range<Int>?)] {
            let gathered = try staged.gatherColumns(rows: subset, columns: columns)
            let expected = try source.gatherColumns(rows: subset, columns: columns)
            #expect(gathered.majorIDs == expected.majorIDs)
            #expect(difference(dense(gathered, nRows: info.nRows, nCols: info.nCols), dense(expected, nRows: info.nRows, nCols: info.nCols)) == nil,
                    "\(file) \(matrixName): gatherColumns rows \(subset == nil ? "all" : "subset") columns \(columns.map { "\($0)" } ?? "all")")
        }
        // Rows ascending within every column, as stored.
        var blocks = try staged.blocks()
        while let slab = try blocks.next() {
            guard case .sparse(let s) = slab else { Issue.record("a staged copy streams as sparse"); return }
            for k in s.majorIDs.indices {
                let column = s.indices[s.indptr[k]..<s.indptr[k + 1]]
                #expect(zip(column, column.dropFirst()).allSatisfy { $0 < $1 }, "\(file) \(matrixName): column \(s.majorIDs[k])")
            }
        }
    }

    @Test func emptyMatrixGivesAnEmptyCopy() throws {
        let scratch = try Scratch()
        let file = try #require(Fixtures.fileNames.first { Fixtures.expected.files[$0]?.matrices["layers/empty"]?.nnz == 0 })
        let (source, staged, summary) = try stage(file, "layers/empty", in: scratch)
        #expect(summary.nnz == 0)
        #expect(staged.info.nnz == 0)
        #expect(try staged.indptr() == [Int](repeating: 0, count: source.info.nCols + 1))
        let gathered = try staged.gatherColumns()
        #expect(gathered.nnz == 0 && gathered.majorIDs == Array(0..<source.info.nCols))
        #expect(try difference(staged.denseRows(), source.denseRows()) == nil)
    }

    @Test func progressRisesFromZeroToOne() throws {
        let scratch = try Scratch()
        let data = try AnnDataFile(path: Fixtures.path("0.12.19-standard.h5ad"))
        final class Fractions: @unchecked Sendable { var values: [Double] = [] }
        let fractions = Fractions()
        _ = try GeneMajorCopy.write(data.matrix("X", budget: ReadBudget(bytes: 1)), to: scratch.path("staged.h5")) {
            fractions.values.append($0)
        }
        #expect(fractions.values.first == 0 && fractions.values.last == 1)
        #expect(fractions.values.count > 10)
        #expect(zip(fractions.values, fractions.values.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func truncatedCopyIsRefusedNamingTheFile() throws {
        let scratch = try Scratch()
        let (source, _, summary) = try stage("0.12.19-standard.h5ad", "X", in: scratch)
        let path = scratch.path("staged.h5")
        #expect(truncate(path, off_t(summary.bytes / 2)) == 0)
        let error = #expect(throws: AnnDataError.self) {
            try GeneMajorCopy.open(path, expectedRows: source.info.nRows, expectedCols: source.info.nCols)
        }
        #expect(error?.file == path)
        #expect(error?.description.contains("truncated") == true, "\(error.map { "\($0)" } ?? "")")
    }

    @Test func missingOrMismatchedCopyIsRefusedNamingTheFile() throws {
        let scratch = try Scratch()
        let (source, _, _) = try stage("0.12.19-standard.h5ad", "X", in: scratch)
        let missing = scratch.path("absent.h5")
        let absent = #expect(throws: AnnDataError.self) { try GeneMajorCopy.open(missing, expectedRows: 1, expectedCols: 1) }
        #expect(absent?.kind == .fileMissing && absent?.file == missing)
        let path = scratch.path("staged.h5")
        let stale = #expect(throws: AnnDataError.self) {
            try GeneMajorCopy.open(path, expectedRows: source.info.nRows, expectedCols: source.info.nCols + 1)
        }
        #expect(stale?.kind == .shapeMismatch && stale?.file == path && stale?.path == "/X")
        // An AnnData file is not a staged copy: its X is CSR.
        let anndata = Fixtures.path("0.12.19-standard.h5ad")
        let foreign = #expect(throws: AnnDataError.self) {
            try GeneMajorCopy.open(anndata, expectedRows: source.info.nRows, expectedCols: source.info.nCols)
        }
        #expect(foreign?.kind == .unsupportedEncoding && foreign?.file == anndata)
    }

    @Test func failedWritesLeaveNothingAtThePath() throws {
        let scratch = try Scratch()
        let data = try AnnDataFile(path: Fixtures.path("0.12.19-standard.h5ad"))

        // The directory cannot hold files (a regular file stands in its place; root ignores permissions).
        #expect(FileManager.default.createFile(atPath: scratch.path("not-a-directory"), contents: Data()))
        let inside = scratch.path("not-a-directory") + "/staged.h5"
        let unwritable = #expect(throws: AnnDataError.self) { try GeneMajorCopy.write(data.matrix("X"), to: inside) }
        #expect(unwritable?.file == inside)
        #expect(!FileManager.default.fileExists(atPath: inside))

        // Everything written, then the rename fails (a directory is in the way): the temporary goes.
        try FileManager.default.createDirectory(atPath: scratch.path("occupied"), withIntermediateDirectories: false)
        #expect(throws: AnnDataError.self) { try GeneMajorCopy.write(data.matrix("X"), to: scratch.path("occupied")) }
        #expect(try scratch.contents() == ["not-a-directory", "occupied"])

        // The source itself is never replaced.
        let source = scratch.path("source.h5ad")
        try FileManager.default.copyItem(atPath: Fixtures.path("0.12.19-standard.h5ad"), toPath: source)
        let itself = #expect(throws: AnnDataError.self) {
            try GeneMajorCopy.write(AnnDataFile(path: source).matrix("X"), to: source)
        }
        #expect(itself?.file == source)
        #expect(try AnnDataFile(path: source).matrix("X").info.format == .csr)
        try FileManager.default.removeItem(atPath: source)

        // A corrupt source fails the copy, and a previous good copy at the path stays intact.
        let path = scratch.path("staged.h5")
        let good = try GeneMajorCopy.write(data.matrix("X"), to: path)
        let bad = try AnnDataFile(path: Fixtures.path("bad-index-out-of-shape.h5ad"))
        let corrupt = #expect(throws: AnnDataError.self) { try GeneMajorCopy.write(bad.matrix("X"), to: path) }
        #expect(corrupt?.kind == .corruptSparse && corrupt?.path == "/X/indices")
        #expect(try scratch.contents() == ["not-a-directory", "occupied", "staged.h5"])
        let kept = try GeneMajorCopy.open(path, expectedRows: data.nObs, expectedCols: data.nVars)
        #expect(kept.info.nnz == good.nnz)
        #expect(try difference(kept.denseRows(), data.matrix("X").denseRows()) == nil)
    }
}
