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

    /// Past the first staging buffer a local-disk file is written with O_DIRECT, the last
    /// partial buffer through the page cache: every byte must land once, in order, whatever the
    /// append sizes, and the hash must be the file's. (On filesystems without O_DIRECT the same
    /// writes go through the page cache.)
    @Test func largeStreamsArriveIntactPastTheStagingBuffer() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("direct-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: url) }
        var expected = [UInt8]()
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        // Appends of awkward sizes: one byte, odd runs, and one bigger than two staging buffers.
        let sizes = [1, 4093, 3 * AtomicFile.Writer.stagingBytes - 17, 12_345, AtomicFile.Writer.stagingBytes, 7]
        let written = try AtomicFile.streamHashed(to: url) { writer in
            for size in sizes {
                let chunk = (0..<size).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return UInt8(truncatingIfNeeded: state >> 56)
                }
                expected += chunk
                try writer.append(bytes: chunk)
            }
        }
        let contents = try Data(contentsOf: url)
        #expect(contents.count == expected.count)
        #expect(contents == Data(expected))
        #expect(written.bytes == expected.count)
        #expect(written.sha256 == (try SHA256.file(url.path)))
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
