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
