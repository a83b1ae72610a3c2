import Foundation
import Testing
@testable import Orchestration

/// Per-shard names and paths, built thousands of times by `status`, `submit` and `reduce`.
@Suite struct RunDirectoryPathTests {
    @Test func shardNamesAreZeroPaddedToFiveDigits() {
        #expect(RunDirectory.shardName(0) == "00000")
        #expect(RunDirectory.shardName(42) == "00042")
        #expect(RunDirectory.shardName(99_999) == "99999")
        #expect(RunDirectory.shardName(123_456) == "123456")
        for index in [1, 9, 10, 4_999, 10_000, 100_000, 1_000_000] {
            #expect(RunDirectory.shardName(index) == String(format: "%05d", index))
        }
    }

    @Test func shardPathsAreFilesInPartsBeforeAndAfterTheyExist() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-rundir-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = RunDirectory(directory.path)
        func check() {
            #expect(run.partURL(3).path == run.path + "/parts/00003.part")
            #expect(run.markerURL(3).path == run.path + "/parts/00003.done")
            #expect(run.failureURL(12_345).path == run.path + "/parts/12345.failed")
            #expect(run.lockURL(3).path == run.path + "/parts/00003.lock")
            #expect(run.logURL(3).path == run.path + "/logs/shard-00003.log")
            #expect(run.partsURL.path == run.path + "/parts" && run.logsURL.path == run.path + "/logs")
            for url in [run.partURL(3), run.markerURL(3), run.failureURL(3), run.lockURL(3), run.logURL(3)] {
                #expect(!url.hasDirectoryPath)
            }
        }
        check()
        try run.create()
        // A marker that exists names the same file.
        try Data("{}".utf8).write(to: run.markerURL(3))
        check()
        #expect(FileManager.default.fileExists(atPath: run.path + "/parts/00003.done"))
    }
}
