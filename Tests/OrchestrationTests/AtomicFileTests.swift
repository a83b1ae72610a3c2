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
