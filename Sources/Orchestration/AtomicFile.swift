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
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw OrchestrationError("\(temporary.path): cannot create: \(String(cString: strerror(errno)))") }
        var failure: String?
        data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fd, buffer.baseAddress! + offset, min(chunkSize, buffer.count - offset))
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil && rename(temporary.path, url.path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary.path)
            throw OrchestrationError("\(url.path): cannot write: \(failure)")
        }
    }
}

/// A run that cannot proceed, in one line naming the file at fault.
public struct OrchestrationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
