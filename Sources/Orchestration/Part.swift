import Analyses
import Foundation
import Synchronization

/// Parts this process computed and has just written, with what their analysis kept of them
/// (`ShardedAnalysis.writePart`), for the reduce that follows in the same process (`run` with a
/// one-shard plan): the reducer then takes the rows instead of reading and hashing gigabytes it
/// has just written. Only a part whose marker carries the sha256 recorded here is taken.
public final class ComputedParts: Sendable {
    struct Part: @unchecked Sendable {
        let sha256: String
        /// An analysis' own value (Sendable when kept).
        let kept: any Sendable
    }
    private let parts = Mutex<[Int: Part]>([:])

    public init() {}

    func keep(shard: Int, sha256: String, _ kept: any Sendable) {
        parts.withLock { $0[shard] = Part(sha256: sha256, kept: kept) }
    }

    /// What this process kept of `shard`, if it wrote the part its marker describes.
    func kept(shard: Int, marker: ShardMarker) -> (any Sendable)? {
        parts.withLock { parts in parts[shard].flatMap { $0.sha256 == marker.sha256 ? $0.kept : nil } }
    }
}

/// `parts/NNNNN.done`: written after the part is in place; the reducer trusts a part only when
/// its marker matches the plan and the part's size and sha256.
public struct ShardMarker: Codable, Sendable, Equatable {
    public static let format = "sctrial-plan.done"
    public var format = ShardMarker.format
    public var version = 1
    public var runID: String
    public var shard: Int
    public var rows: Int
    public var bytes: Int
    public var sha256: String
    public var seconds: Double
    public var peakRSSBytes: Int
    /// Bytes the worker read through read(2)/pread(2) (`rchar`), page cache included: the I/O a
    /// shard costs, whatever is cached.
    public var readBytes: Int
    public var host: String
    public var finishedAt: String

    enum CodingKeys: String, CodingKey {
        case format, version, shard, rows, bytes, sha256, seconds, host
        case runID = "run_id", peakRSSBytes = "peak_rss_bytes", finishedAt = "finished_at", readBytes = "read_bytes"
    }

    static func read(_ url: URL) -> ShardMarker? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(ShardMarker.self, from: data)
    }

    func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }
}

/// `parts/NNNNN.failed`: the last failure of a shard (removed when it succeeds).
public struct ShardFailure: Codable, Sendable, Equatable {
    public var shard: Int
    public var exitCode: Int32
    public var message: String
    public var at: String

    enum CodingKeys: String, CodingKey { case shard, message, at, exitCode = "exit_code" }

    static func read(_ url: URL) -> ShardFailure? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(ShardFailure.self, from: data)
    }
}
