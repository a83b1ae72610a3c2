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
    /// throughout, so a second worker on the same shard waits and then finds it done. A DE
    /// shard's rows are also left in `computed` when given, for a reduce in this process.
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
            let written: (bytes: Int, sha256: String)
            let rows: Int
            var computedDE: ComputedParts.Part?
            switch plan.analysis.kind {
            case .de:
                let result = try computeDE(plan, run: run, shard: shard, threads: threads ?? plan.resources.threads,
                                           budget: budget, gatherBudget: Int(memory / 2))
                rows = result.rows.count
                // A one-shard plan's table is this shard's rows, in order: a reduce in this
                // process needs their FDR, computed here while the part is written.
                let fdr = Mutex<[Double]?>(nil)
                let ranking = DispatchGroup()
                if computed != nil && plan.shards.count == 1 {
                    DispatchQueue.global().async(group: ranking) {
                        let computedFDR = try? BenjaminiHochberg.scipy(result.rows.map(\.pValue))
                        fdr.withLock { $0 = computedFDR }
                    }
                }
                written = try AtomicFile.streamHashed(to: run.partURL(index)) { try DEPart.write(result, shard: index, into: &$0) }
                ranking.wait()
                computedDE = ComputedParts.Part(sha256: written.sha256, result: result, fdr: fdr.withLock { $0 })
            case .did:
                let result = try computeDiD(plan, run: run, shard: shard, budget: budget)
                rows = result.rows.count
                written = try AtomicFile.streamHashed(to: run.partURL(index)) { try $0.append(bytes: DiDPart.encode(result, shard: index)) }
            }
            let elapsed = ContinuousClock.now - clock
            let marker = ShardMarker(runID: plan.runID, shard: index, rows: rows, bytes: written.bytes, sha256: written.sha256,
                                     seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
                                     peakRSSBytes: peakResidentBytes(), readBytes: bytesRead(), host: ProcessInfo.processInfo.hostName,
                                     finishedAt: Timestamp.now())
            try marker.write(to: run.markerURL(index))
            if let computed, let computedDE { computed.keep(shard: index, computedDE) }
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
        guard let marker = ShardMarker.read(run.markerURL(shard)), marker.runID == plan.runID, marker.shard == shard,
              let size = (try? FileManager.default.attributesOfItem(atPath: run.partURL(shard).path))?[.size] as? NSNumber
        else { return false }
        return size.intValue == marker.bytes
    }

    /// Temporary files a killed worker left (only a lock holder writes, so any left are stale).
    static func removeStaleTemporaries(_ run: RunDirectory, shard: Int) {
        let prefix = ".\(RunDirectory.shardName(shard))."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run.partsURL.path)) ?? []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(at: run.partsURL.appendingPathComponent(name))
        }
    }

    static func computeDE(_ plan: Plan, run: RunDirectory, shard: Plan.Shard, threads: Int, budget: ReadBudget,
                          gatherBudget: Int) throws -> DEShardResult {
        guard let de = plan.analysis.de else { throw OrchestrationError("\(run.planURL.path): DE plan without its DE section") }
        var parameters = de.parameters
        parameters.isLog1p = de.isLog1p ? .yes : .no
        var selection = DESelection(stagedMatrix: plan.staged.matrix.map { run.resolve($0).path })
        switch plan.axis {
        case .perturbations: selection.targets = shard.units
        case .features: selection.genes = shard.units
        case .celltypes: throw OrchestrationError("\(run.planURL.path): a DE plan cannot be split by cell type")
        }
        let result = try DifferentialExpression.shard(path: plan.input.path, parameters: parameters, selection: selection,
                                                      threads: threads, budget: budget, gatherBudget: gatherBudget)
        guard result.targets.count == (plan.axis == .perturbations ? shard.units.count : de.targets.count) else {
            throw OrchestrationError("\(plan.input.path): the file now has other targets than at planning; plan the run again")
        }
        return result
    }

    static func computeDiD(_ plan: Plan, run: RunDirectory, shard: Plan.Shard, budget: ReadBudget) throws -> DiDShardResult {
        guard let did = plan.analysis.did else { throw OrchestrationError("\(run.planURL.path): DiD plan without its DiD section") }
        var selection = DiDSelection(stagedMatrix: plan.staged.matrix.map { run.resolve($0).path })
        selection.geneTotals = try plan.staged.geneTotals.map { try StagedVector.read(run.resolve($0)) }
        selection.librarySizes = try plan.staged.librarySizes.map { try StagedVector.read(run.resolve($0)) }
        switch plan.axis {
        case .features: selection.features = shard.units
        case .celltypes: selection.celltypes = shard.units
        case .perturbations: throw OrchestrationError("\(run.planURL.path): a DiD plan cannot be split by perturbation")
        }
        return try DiDAnalysis.shard(path: plan.input.path, parameters: did.parameters, selection: selection, budget: budget)
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

/// A float64 vector computed once at planning (`RUN/staged/*.f64`, little-endian).
enum StagedVector {
    static func write(_ values: [Double], to url: URL) throws {
        var encoder = BinaryEncoder()
        encoder.bytes.reserveCapacity(values.count * 8)
        for value in values { encoder.append(value) }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Data(encoder.bytes), to: url)
    }

    static func read(_ url: URL) throws -> [Double] {
        guard let data = try? Data(contentsOf: url) else {
            throw OrchestrationError("\(url.path): staged file missing or unreadable; plan the run again")
        }
        guard data.count % 8 == 0 else { throw OrchestrationError("\(url.path): truncated staged file; plan the run again") }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }
}
