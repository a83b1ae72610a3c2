import Analyses
import CLinux
import Foundation

/// Writes files so that a reader never sees half of one: write beside the target under a
/// temporary name, flush, then rename over it (rename is atomic within a filesystem).
public enum AtomicFile {
    /// Bytes per write(2) call. Linux moves at most 0x7ffff000 bytes per call; Foundation's
    /// `Data.write(to:)` on Linux then re-wrote the start of the buffer, silently corrupting any
    /// file over 2 GiB, so the loop here advances its own offset.
    static let chunkSize = 1 << 30

    public static func write(_ data: Data, to url: URL) throws {
        try write(data, to: url, chunkSize: chunkSize)
    }

    static func write(_ data: Data, to url: URL, chunkSize: Int) throws {
        try stream(to: url, chunkSize: chunkSize) { (writer: inout Writer) throws in
            try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) throws in try writer.write(buffer) }
        }
    }

    /// Streams a file through `body` under a temporary name and renames it into place only if
    /// `body` and every write succeed: big tables never sit whole in memory.
    public static func stream(to url: URL, _ body: (inout Writer) throws -> Void) throws {
        _ = try stream(to: url, chunkSize: chunkSize, hashing: false, body)
    }

    /// `stream`, also returning the bytes written and their sha256 (for done markers; hashing a
    /// multi-GB table nobody checks costs seconds, so only parts ask for it).
    public static func streamHashed(to url: URL, _ body: (inout Writer) throws -> Void) throws -> (bytes: Int, sha256: String) {
        let (bytes, sha256) = try stream(to: url, chunkSize: chunkSize, hashing: true, body)
        return (bytes, sha256 ?? "")
    }

    static func stream(to url: URL, chunkSize: Int, hashing: Bool = false,
                       _ body: (inout Writer) throws -> Void) throws -> (bytes: Int, sha256: String?) {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw OrchestrationError("\(temporary.path): cannot create: \(String(cString: strerror(errno)))", temporary: true) }
        let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: Writer.stagingBytes, alignment: Writer.directAlignment)
        defer { staging.deallocate() }
        var writer = Writer(fd: fd, path: url.path, chunkSize: chunkSize, hasher: hashing ? SHA256() : nil, staging: staging,
                            direct: Writer.localDisk(fd) ? .allowed : .off)
        do {
            try body(&writer)
            try writer.finish()
            if fsync(fd) != 0 { throw OrchestrationError("\(url.path): cannot write: \(String(cString: strerror(errno)))", temporary: true) }
            close(fd)
            if rename(temporary.path, url.path) != 0 {
                throw OrchestrationError("\(url.path): cannot rename into place: \(String(cString: strerror(errno)))", temporary: true)
            }
            return (writer.count, writer.hasher?.finish())
        } catch {
            close(fd)
            unlink(temporary.path)
            throw error
        }
    }

    /// Buffered appends to the temporary file. Past the first staging buffer, a file on a local
    /// disk is written with O_DIRECT: multi-GB tables then go to the disk without first being
    /// copied into freshly allocated page cache (which costs more than the disk write itself on
    /// virtual machines, and evicts the input a rerun would read). Other filesystems (network,
    /// tmpfs) and small files keep ordinary buffered writes.
    public struct Writer: ByteSink {
        enum Direct { case off, allowed, on }

        /// Staging buffer size: whole buffers keep every O_DIRECT write aligned in offset and size.
        static let stagingBytes = 8 << 20
        static let directAlignment = 4096

        let fd: Int32
        let path: String
        let chunkSize: Int
        var hasher: SHA256?
        let staging: UnsafeMutableRawBufferPointer
        var direct: Direct
        var staged = 0
        /// Bytes appended so far.
        var count = 0

        /// Appends text.
        public mutating func append(_ text: String) throws {
            var text = text
            try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
        }

        /// Appends bytes.
        public mutating func append(bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }

        /// Appends raw bytes through the staging buffer.
        public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
            var offset = 0
            while offset < bytes.count {
                let take = min(bytes.count - offset, staging.count - staged)
                (staging.baseAddress! + staged).copyMemory(from: bytes.baseAddress! + offset, byteCount: take)
                staged += take
                offset += take
                if staged == staging.count { try flushStaging() }
            }
            count += bytes.count
        }

        private mutating func flushStaging() throws {
            let bytes = UnsafeRawBufferPointer(rebasing: staging[..<staged])
            hasher?.update(bytes)
            // The file's first buffer goes through the page cache: most files end within it.
            if direct == .allowed, staged == staging.count, count >= staging.count {
                direct = setDirect(true) ? .on : .off
            }
            if direct == .on, staged % Self.directAlignment != 0 {
                direct = .off
                _ = setDirect(false)
            }
            do {
                try writeOut(bytes)
            } catch let error as DirectWriteRefused {
                // Some filesystems accept the flag but refuse the write: fall back for good.
                _ = error
                direct = .off
                _ = setDirect(false)
                try writeOut(bytes)
            }
            staged = 0
        }

        /// Writes what is staged: called once at the end (a last partial buffer is written
        /// through the page cache).
        mutating func finish() throws {
            if direct == .on, staged % Self.directAlignment != 0 {
                direct = .off
                _ = setDirect(false)
            }
            try flushStaging()
        }

        private struct DirectWriteRefused: Error {}

        private func writeOut(_ bytes: UnsafeRawBufferPointer) throws {
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(fd, bytes.baseAddress! + offset, min(chunkSize, bytes.count - offset))
                if written < 0 {
                    if errno == EINTR { continue }
                    if errno == EINVAL && direct == .on && offset == 0 { throw DirectWriteRefused() }
                    throw OrchestrationError("\(path): cannot write: \(String(cString: strerror(errno)))", temporary: true)
                }
                offset += written
            }
        }

        private func setDirect(_ on: Bool) -> Bool {
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0 else { return false }
            return fcntl(fd, F_SETFL, on ? flags | sc_o_direct : flags & ~sc_o_direct) == 0
        }

        /// ext4, XFS or btrfs: local block devices, where O_DIRECT is plain and fast.
        static func localDisk(_ fd: Int32) -> Bool {
            [0xEF53, 0x5846_5342, 0x9123_683E].contains(sc_filesystem_type(fd))
        }
    }
}

/// A run that cannot proceed, in one line naming the file at fault.
public struct OrchestrationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// A failure worth retrying (a write that failed, a lock that could not be taken), as
    /// opposed to bad input or a bad plan, which fail the same way every time.
    public let isTemporary: Bool

    public init(_ message: String, temporary: Bool = false) {
        self.message = message
        isTemporary = temporary
    }

    public var description: String { message }
}
