import Analyses
import AnnData
import Dispatch
import Foundation
import Stats
import Synchronization

/// Runs one shard of a plan: what `sctrial-worker RUN --shard I` does, wherever it runs.
public enum ShardWorker {
    public enum Outcome: Sendable, Equatable {
        case done(rows: Int, seconds: Double)
        /// A valid marker was already there: nothing to do (workers are idempotent).
        case alreadyDone
    }

    /// Computes shard `index` and writes its part and marker atomically. Holds the shard's lock
    /// throughout, so a second worker on the same shard waits and then finds it done. What the
    /// analysis keeps of its rows is left in `computed` when given, for a reduce in this process.
    /// `plan`: the run's plan when the caller has read it already.
    public static func run(_ run: RunDirectory, plan: Plan? = nil, shard index: Int, threads: Int? = nil, memoryGB: Double? = nil,
                           computed: ComputedParts? = nil) throws -> Outcome {
        let plan = try plan ?? run.readPlan()
        guard plan.shards.indices.contains(index) else {
            throw OrchestrationError("\(run.planURL.path): shard \(index) does not exist (the plan has \(plan.shards.count) shards, 0-\(plan.shards.count - 1))")
        }
        try run.create()
        do {
            let lock = try ShardLock(run.lockURL(index))
            defer { lock.release() }
            if isDone(plan, run: run, shard: index) { return .alreadyDone }
            removeStaleTemporaries(run, shard: index)
            let clock = ContinuousClock.now
            try plan.checkInputUnchanged()
            // An eighth of the memory for read blocks; DE's gene-major gather gets half.
            let memory = (memoryGB ?? plan.resources.memoryGB) * 1e9
            let budget = ReadBudget(bytes: Int(memory / 8))
            let shard = plan.shards[index]
            let input = ShardInput(inputPath: plan.input.path, runDirectory: run.url, planPath: run.planURL.path, index: index,
                                   shardCount: plan.shards.count, units: shard.units, axis: plan.axis,
                                   staged: StagedFiles(matrix: plan.staged.matrix.map { run.resolve($0).path },
                                                       geneTotals: plan.staged.geneTotals.map { run.resolve($0).path },
                                                       librarySizes: plan.staged.librarySizes.map { run.resolve($0).path }),
                                   threads: threads ?? plan.resources.threads, budget: budget, gatherBudget: Int(memory / 2))
            let (rows, written, kept) = try compute(plan.analysis.value, input: input, to: run.partURL(index), keep: computed != nil)
            let elapsed = ContinuousClock.now - clock
            let marker = ShardMarker(runID: plan.runID, shard: index, rows: rows, bytes: written.bytes, sha256: written.sha256,
                                     seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
                                     peakRSSBytes: peakResidentBytes(), readBytes: bytesRead(), host: ProcessInfo.processInfo.hostName,
                                     finishedAt: Timestamp.now())
            try marker.write(to: run.markerURL(index))
            if let computed, let kept { computed.keep(shard: index, sha256: written.sha256, kept) }
            try? FileManager.default.removeItem(at: run.failureURL(index))
            return .done(rows: rows, seconds: marker.seconds)
        } catch {
            let code: Int32 = (error as? OrchestrationError)?.isTemporary == true ? 75 : 2
            let failure = ShardFailure(shard: index, exitCode: code, message: "\(error)", at: Timestamp.now())
            if let data = try? JSONEncoder().encode(failure) { try? AtomicFile.write(data, to: run.failureURL(index)) }
            throw error
        }
    }

    /// A marker for this plan whose part is there with the recorded size. (The reducer also
    /// checks the sha256.)
    public static func isDone(_ plan: Plan, run: RunDirectory, shard: Int) -> Bool {
        doneMarker(plan, run: run, shard: shard) != nil
    }

    /// The marker that makes the shard done (see `isDone`), so a caller that wants its numbers
    /// does not read and decode it a second time.
    public static func doneMarker(_ plan: Plan, run: RunDirectory, shard: Int) -> ShardMarker? {
        guard let marker = ShardMarker.read(run.markerURL(shard)), marker.runID == plan.runID, marker.shard == shard,
              let size = (try? FileManager.default.attributesOfItem(atPath: run.partURL(shard).path))?[.size] as? NSNumber,
              size.intValue == marker.bytes
        else { return nil }
        return marker
    }

    /// Temporary files a killed worker left (only a lock holder writes, so any left are stale).
    static func removeStaleTemporaries(_ run: RunDirectory, shard: Int) {
        let prefix = ".\(RunDirectory.shardName(shard))."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run.partsURL.path)) ?? []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(at: run.partsURL.appendingPathComponent(name))
        }
    }

    /// Computes the shard and streams its part (opened as a concrete analysis type, so the
    /// analysis' own result type flows from computing to writing).
    static func compute<A: ShardedAnalysis>(_ analysis: A, input: ShardInput, to url: URL,
                                            keep: Bool) throws -> (rows: Int, written: (bytes: Int, sha256: String), kept: (any Sendable)?) {
        let result = try analysis.computeShard(input)
        var kept: (any Sendable)?
        let written = try AtomicFile.streamHashed(to: url) { kept = try analysis.writePart(result, input: input, keep: keep, into: &$0) }
        return (analysis.rowCount(result), written, kept)
    }

    /// `rchar` of /proc/self/io (0 where there is no procfs).
    static func bytesRead() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("rchar:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }

    /// Peak resident set size of this process (Linux reports ru_maxrss in KiB).
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }
}

/// An exclusive advisory lock on a shard (flock): concurrent workers on one shard serialise.
final class ShardLock {
    private let fd: Int32

    init(_ url: URL) throws {
        fd = open(url.path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw OrchestrationError("\(url.path): cannot create the shard lock: \(String(cString: strerror(errno)))", temporary: true) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw OrchestrationError("\(url.path): cannot lock the shard: \(String(cString: strerror(errno)))", temporary: true)
            }
        }
    }

    /// Whether some process holds the lock now (a worker is running that shard).
    static func isHeld(_ url: URL) -> Bool {
        let fd = open(url.path, O_RDWR)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { flock(fd, LOCK_UN); return false }
        return errno == EWOULDBLOCK
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
