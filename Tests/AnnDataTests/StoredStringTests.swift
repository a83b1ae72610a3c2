@testable import AnnData
import Foundation
import Testing

/// The fingerprint reads index names from the file mapped in memory (the global heap parsed in
/// place); it must give libhdf5's strings byte for byte, and apply to anndata's own indexes.
@Suite struct StoredStringTests {
    @Test(arguments: Fixtures.fileNames)
    func indexNameBytesAreTheNames(_ name: String) throws {
        let file = try AnnDataFile(path: Fixtures.path(name))
        for frame in [file.obs, file.vars] {
            var names: [String] = []
            try frame.forEachIndexName { names.append(String(decoding: $0, as: UTF8.self)) }
            #expect(names == (try frame.index()), "\(name) \(frame.path)")
        }
    }

    @Test func theMappedPathReadsAnnDatasStringIndexes() throws {
        var mapped = 0
        for name in Fixtures.fileNames {
            let file = try AnnDataFile(path: Fixtures.path(name))
            guard file.reader.kind(of: "/obs/_index") == .dataset else { continue }
            var names: [String] = []
            if try file.reader.forEachHeapString("/obs/_index", { names.append(String(decoding: $0, as: UTF8.self)) }) {
                mapped += 1
                #expect(names == (try file.reader.readStringDataset("/obs/_index")), "\(name)")
            }
        }
        #expect(mapped > 0)
    }
}

/// Labels of stored numbers as pandas prints them; expected values from Python's `repr` (float64)
/// and numpy 2.4's `str` (float32).
@Suite struct NumberSpellingTests {
    @Test func float64IsPythonsRepr() {
        let cases: [(Double, String)] = [
            (-0.5, "-0.5"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"), (0.00001, "1e-05"), (-0.0, "-0.0"), (1.5e-7, "1.5e-07"), (2.5, "2.5"), (100.0, "100.0"),
            (1e22, "1e+22"), (9007199254740993.0, "9007199254740992.0"), (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3, "0.3333333333333333"), (.nan, "nan"), (-.infinity, "-inf"),
        ]
        for (value, python) in cases { #expect(formatNumber(value, .float64) == python, "\(value)") }
    }

    @Test func float32IsNumpysStr() {
        let cases: [(Float, String)] = [
            (0.1, "0.1"), (1e-5, "1e-05"), (3.4e38, "3.4e+38"), (16777216, "1.6777216e+07"), (0.3, "0.3"),
            (999999.9, "999999.9"), (1e6, "1e+06"), (1e-4, "1e-04"), (0.00010001, "0.00010001"), (1, "1.0"),
        ]
        for (value, numpy) in cases { #expect(formatNumber(Double(value), .float32) == numpy, "\(value)") }
    }

    @Test func boolsAndIntegers() {
        #expect(formatNumber(1, .bool) == "True" && formatNumber(0, .bool) == "False")
        #expect(formatNumber(3, .int64) == "3" && formatNumber(-7, .int8) == "-7" && formatNumber(200, .uint8) == "200")
    }
}
