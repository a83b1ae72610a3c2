import Foundation
import Testing
@testable import Orchestration

@Suite struct AtomicFileTests {
    /// Small chunks exercise the offset loop that keeps files over 2 GiB intact.
    @Test func manyChunksWriteEveryByteOnce() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let data = Data((0..<100_003).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try AtomicFile.write(data, to: url, chunkSize: 4096)
        #expect(try Data(contentsOf: url) == data)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
            .filter { $0.hasPrefix(".\(url.lastPathComponent)") }
        #expect(leftovers.isEmpty)
    }

    @Test func unwritableDirectoryIsAClearError() {
        let url = URL(fileURLWithPath: "/proc/definitely-not-writable/results.csv")
        let error = #expect(throws: OrchestrationError.self) { try AtomicFile.write(Data("x".utf8), to: url) }
        #expect(error?.message.contains("cannot create") == true)
    }
}

@Suite struct HashedStreamTests {
    /// A part's marker carries the sha256 computed while writing: it must be the file's.
    @Test func theHashWhileWritingIsTheFilesHash() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hashed-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        let written = try AtomicFile.streamHashed(to: url) { writer in
            for round in 0..<3 { try writer.append(bytes: [UInt8](repeating: UInt8(round), count: 3 << 20)) }
            try writer.append("tail")
        }
        #expect(written.bytes == 9 << 20 + 4)
        #expect(written.sha256 == (try SHA256.file(url.path)))
        #expect(written.sha256.count == 64)
        var empty = SHA256()
        empty.update("")
        #expect(empty.finish() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }
}
