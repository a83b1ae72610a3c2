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
        var writer = Writer(fd: fd, path: url.path, chunkSize: chunkSize, hasher: hashing ? SHA256() : nil)
        do {
            try body(&writer)
            try writer.flush()
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

    /// Buffered appends to the temporary file.
    public struct Writer {
        let fd: Int32
        let path: String
        let chunkSize: Int
        var hasher: SHA256?
        var buffer: [UInt8] = []
        var count = 0

        /// Appends text; flushed to the file every 4 MB.
        public mutating func append(_ text: String) throws {
            buffer.append(contentsOf: text.utf8)
            if buffer.count >= 4 << 20 { try flush() }
        }

        /// Appends bytes; flushed to the file every 4 MB.
        public mutating func append(bytes: [UInt8]) throws {
            buffer.append(contentsOf: bytes)
            if buffer.count >= 4 << 20 { try flush() }
        }

        mutating func flush() throws {
            try buffer.withUnsafeBytes { try write($0) }
            buffer.removeAll(keepingCapacity: true)
        }

        mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
            hasher?.update(bytes)
            count += bytes.count
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(fd, bytes.baseAddress! + offset, min(chunkSize, bytes.count - offset))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw OrchestrationError("\(path): cannot write: \(String(cString: strerror(errno)))", temporary: true)
                }
                offset += written
            }
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
