import Analyses
import AnnData
import Foundation
import Testing

/// Parity with sctrial 1.0.0 `add_log1p_cpm_layer` (goldens: tools/goldens/genesets/make_goldens.py).
///
/// Library sizes: exact (==) for integer counts (did_clean's float32 CSR layer) and for float64
/// CSR and dense input, where we sum in scipy's / numpy's order; CSC is summed sequentially along
/// each row (scipy converts to CSR and uses reduceat), so 1e-15 relative there. Transformed values
/// and per-cell sums of the output: 1e-12 relative (measured: identical, log1p is glibc's in both).
@Suite struct Log1pCPMTests {
    static let fixtures = GeneSetsTests.fixtures

    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let `case`: String
        let input: String
        let element: String
        let dtype: String
        let scale: Double
        let n_obs: Int
        let library_sizes: [Double]
        let cells: [Int]
        let values: [[Double]]
        let row_sums: [Double]
        var testDescription: String { self.case }
    }

    struct Raise: Decodable, Sendable, CustomTestStringConvertible {
        let `case`: String
        let input: String
        let element: String
        let raises: String
        var testDescription: String { self.case }
    }

    struct File: Decodable { let cases: [Case]; let raises: [Raise] }

    static let golden: File = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("genesets/log1p_cpm.json"))
        return try! JSONDecoder().decode(File.self, from: data)
    }()

    static func path(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }

    @Test(arguments: golden.cases)
    func librarySizesMatch(_ c: Case) throws {
        let sizes = try Log1pCPM.librarySizes(path: Self.path(c.input), element: c.element)
        try #require(sizes.count == c.n_obs)
        let exact = !c.dtype.hasPrefix("csc")
        var worst = 0.0
        for (cell, (got, want)) in zip(sizes, c.library_sizes).enumerated() {
            if exact {
                #expect(got == want, "\(c.case) cell \(cell): \(got) vs \(want)")
            } else {
                #expect(abs(got - want) <= 1e-15 * want, "\(c.case) cell \(cell): \(got) vs \(want)")
            }
            if want > 0 { worst = max(worst, abs(got - want) / want) }
        }
        print("log1p-CPM library sizes \(c.case): worst relative \(worst)")
        // Streaming in small blocks changes nothing.
        let small = try Log1pCPM.librarySizes(path: Self.path(c.input), element: c.element, budget: ReadBudget(bytes: 256))
        #expect(small == sizes)
    }

    @Test(arguments: golden.cases)
    func transformedValuesMatch(_ c: Case) throws {
        let file = try AnnDataFile(path: Self.path(c.input))
        let matrix = try file.matrix(c.element, budget: ReadBudget(bytes: 1024))
        let libraries = try Log1pCPM.librarySizes(matrix: matrix, file: file.path)
        // Every cell, densified from the transformed slabs.
        var dense = [[Double]](repeating: [Double](repeating: 0, count: matrix.info.nCols), count: matrix.info.nRows)
        var blocks = try matrix.blocks()
        while let slab = try blocks.next() {
            Log1pCPM.forEachTransformedEntry(slab, libraries: libraries, scale: c.scale) { row, column, value in
                dense[row][column] = value
            }
        }
        var worst = 0.0
        func check(_ got: Double, _ want: Double, _ what: String) {
            let difference = abs(got - want)
            #expect(difference <= 1e-12 * abs(want), "\(c.case) \(what): \(got) vs \(want)")
            if want != 0 { worst = max(worst, difference / abs(want)) }
        }
        for (k, cell) in c.cells.enumerated() {
            for (column, want) in c.values[k].enumerated() { check(dense[cell][column], want, "cell \(cell) gene \(column)") }
        }
        for (cell, want) in c.row_sums.enumerated() { check(GeneSetScoring.numpySum(dense[cell]), want, "row sum \(cell)") }
        print("log1p-CPM values \(c.case): worst relative \(worst)")

        // A row subset streams the same values (CSC: column slabs filtered to the rows).
        var subset = try matrix.blocks(rows: c.cells)
        while let slab = try subset.next() {
            let values = Log1pCPM.transformedValues(slab, libraries: libraries, scale: c.scale)
            var position = 0
            slab.forEachEntry { row, column, _ in
                #expect(values[position] == dense[row][column])
                position += 1
            }
        }
    }

    @Test(arguments: golden.raises)
    func invalidCountsAreNamed(_ r: Raise) throws {
        let path = Self.path(r.input)
        let error = #expect(throws: AnalysisError.self) { try Log1pCPM.librarySizes(path: path, element: r.element) }
        let message = error?.message ?? ""
        #expect(message.hasPrefix("\(path): \(r.element): stored value at cell "), "\(message)")
        #expect(message.contains(r.element == "layers/counts_nan" ? "is nan" : "is negative (-1.0)"), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func perValueRules() throws {
        #expect(Log1pCPM.value(3, library: 0) == 0)
        #expect(Log1pCPM.denseValue(3, library: 0) == 0)
        #expect(Log1pCPM.factor(library: 0) == 0)
        #expect(Log1pCPM.value(5, library: 20) == log1p(5 * (1e6 / 20)))
        #expect(Log1pCPM.denseValue(5, library: 20, scale: 1e4) == log1p(5 / 20 * 1e4))
        #expect(Log1pCPM.value(0, library: 20) == 0)
        #expect(Log1pCPM.rowSum(UnsafeBufferPointer(start: nil, count: 0)) == 0)
        for bad in [0.0, -1, .nan, .infinity] {
            #expect(throws: AnalysisError.self) { try Log1pCPM.validate(scale: bad) }
        }
        try Log1pCPM.validate(scale: 1e6)
        let missing = #expect(throws: AnalysisError.self) {
            try Log1pCPM.librarySizes(path: Self.path("genesets/genesets_edge.h5ad"), element: "layers/nope")
        }
        #expect(missing?.message.contains("layers/nope") == true)
    }
}
