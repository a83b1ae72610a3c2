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
