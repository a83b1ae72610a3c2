import AnnData
import Foundation
import Testing

/// Each deliberately broken file gives an AnnDataError naming the file and the HDF5 path at
/// fault — on open, on inspect, or at the latest during a full streaming pass — never a crash.
@Suite struct BadInputTests {
    /// Opens, summarises and streams every matrix; returns the first error.
    private func firstError(_ path: String) -> AnnDataError? {
        do {
            let file = try AnnDataFile(path: path)
            _ = try file.summary()
            for name in try file.matrixNames() {
                let reader = try file.matrix(name)
                var blocks = try reader.blocks()
                while try blocks.next() != nil {}
            }
            _ = try file.obs.index()
            _ = try file.vars.index()
            for name in file.obs.columnNames { _ = try file.obs.column(name, expectedCount: file.nObs) }
            for name in file.vars.columnNames { _ = try file.vars.column(name, expectedCount: file.nVars) }
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: Fixtures.badFileNames)
    func badFileIsReportedWithItsPath(_ name: String) throws {
        let want = try #require(Fixtures.expected.errors[name])
        let error = try #require(firstError(Fixtures.path(name)), "\(name) was accepted")
        #expect(error.file.hasSuffix(name))
        // The generator names the element at fault; we may name a member inside it (/X/indptr for /X).
        #expect(error.path.hasPrefix(want.path) || (want.path == "/" && error.path.isEmpty), "\(name): \(error)")
        #expect(!error.description.contains("\n"))
    }

    @Test func missingFile() {
        let error = firstError("/definitely/not/here.h5ad")
        #expect(error?.kind == .fileMissing)
        #expect(error?.description == "/definitely/not/here.h5ad: no such file")
    }

    /// A filter nobody here decodes (zstd) is named, with the way out, on numbers and on strings
    /// alike (strings used to surface libhdf5's plugin-loader error instead).
    @Test(arguments: [("bad-zstd.h5ad", "/X"), ("bad-zstd-strings.h5ad", "/obs/_index")])
    func missingFilterIsNamed(_ name: String, _ element: String) throws {
        let error = try #require(firstError(Fixtures.path(name)))
        #expect(error.kind == .missingFilter, "\(error)")
        #expect(error.path == element)
        #expect(error.detail.hasPrefix("compressed with zstd (HDF5 filter 32015), which this libhdf5 cannot decode; rewrite the file with gzip"), "\(error)")
    }

    /// A Zarr store is anndata's other format, not a missing file: say so and how to convert.
    @Test func zarrStoreIsNamedAsSuch() throws {
        for marker in [".zgroup", "zarr.json"] {
            let store = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-\(UUID().uuidString).zarr")
            defer { try? FileManager.default.removeItem(at: store) }
            try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
            try Data("{}".utf8).write(to: store.appendingPathComponent(marker))
            let error = try #require(firstError(store.path))
            #expect(error.kind == .zarrStore)
            let stem = store.deletingPathExtension().path
            #expect(error.description == "\(store.path): is a Zarr store; sctrial-plan reads .h5ad: convert with `anndata.read_zarr(\"\(store.path)\").write_h5ad(\"\(stem).h5ad\")`")
        }
        let plain = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: plain) }
        try FileManager.default.createDirectory(at: plain, withIntermediateDirectories: true)
        #expect(firstError(plain.path)?.description == "\(plain.path): is a directory, not an .h5ad file")
    }

    @Test func missingObsColumnNamesTheColumn() throws {
        let name = try #require(Fixtures.fileNames.first)
        let file = try AnnDataFile(path: Fixtures.path(name))
        let error = #expect(throws: AnnDataError.self) { try file.obs.column("no_such_column") }
        #expect(error?.kind == .missingElement)
        #expect(error?.path == "/obs/no_such_column")
    }

    @Test func missingLayerListsWhatExists() throws {
        let name = try #require(Fixtures.fileNames.first)
        let file = try AnnDataFile(path: Fixtures.path(name))
        let error = #expect(throws: AnnDataError.self) { try file.matrix("nope") }
        #expect(error?.description.contains("no such matrix (present: X") == true)
    }
}
