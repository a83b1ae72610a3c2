import Foundation
import Testing
import Orchestration

/// Faults on the real test cluster (slurm/local-cluster.sh: memory enforced by JobAcctGather's
/// OverMemoryKill, jobs in partition `urgent` preempt and requeue those in `debug`): a shard over
/// its --mem, over its --time, preempted, and the controller restarted mid-run. Shards are held
/// at their lock (the worker takes parts/NNNNN.lock first and waits for it) so that they are
/// running when the fault strikes: the shard stays a real worker, only its start is delayed.
extension SubmitTests {
    @Test func aShardOverItsMemoryIsDiagnosedAndRetriedWithTheMeasuredOverrun() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.de + ["--out", run, "--shards", "2"]).status == 0)
        // Held until Slurm has killed shard 0 (it samples memory every 2 s, and a worker waiting
        // for its lock already holds ~30 MB), however late the task starts on a loaded machine.
        let locks = try (0..<2).map { try HeldShardLock(run: run, shard: $0) }
        let submitting = try BackgroundCLI(["submit", run, "--wait", "--time", "10", "--mem", "10M"])
        try Self.waitFor("the memory kill", seconds: 120) {
            (try? Self.logText(run)).map { Self.memoryKill(in: $0) != nil } == true
        }
        locks.forEach { $0.release() }
        let failed = submitting.finish()
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"), "the reducer must not run")
        // The numbers Slurm measured, from the task's log.
        let log = try String(contentsOfFile: try Self.taskLog(run, shard: 0), encoding: .utf8)
        let measured = try #require(Self.memoryKill(in: log), "\(log)")
        #expect(measured.limit == 10 * 1_048_576)
        let status = try CLI.run(["status", run])
        #expect(status.stdout.contains("shard 0: failed: Slurm task") && status.stdout.contains("ran out of memory (used \(Int((Double(measured.used) / 1_048_576).rounded())) MB of 10 MB)"),
                "\(status.stdout)")
        let retried = try CLI.run(["retry", run, "--wait"])
        #expect(retried.status == 0, "\(retried.stderr)")
        let expected = Int((10 * max(2, 1.25 * Double(measured.used) / Double(measured.limit))).rounded(.up))
        #expect(retried.stderr.contains("shard 0: memory 10 → \(expected) MB (used"), "\(retried.stderr)")
        let arrays = try Self.arrays(run, submission: 1)
        #expect(arrays.contains { ($0["shards"] as? [Int])?.contains(0) == true && $0["memory_mb"] as? Int == expected }, "\(arrays)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == localTable(Self.de))
    }

    /// Two runs at once (the node has 2 CPUs): one whose shard outlives --time 1 and is
    /// resubmitted by --auto-retry with twice the time, one whose shard a job in partition
    /// `urgent` preempts, which Slurm requeues (after cred_expire, 20 s in the test cluster) and the wait
    /// follows to the end without counting it failed. The timed-out run goes to `urgent`, which
    /// nothing preempts, so the preemption strikes the other.
    @Test func aTimedOutShardGetsTwiceTheTimeAndAPreemptedOneIsFollowed() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let (slow, preempted) = (temporaryRun(), temporaryRun())
        defer { for run in [slow, preempted] { try? FileManager.default.removeItem(atPath: run) } }
        for run in [slow, preempted] { #expect(try CLI.run(Self.de + ["--out", run, "--shards", "1"]).status == 0) }
        let slowLock = try HeldShardLock(run: slow, shard: 0)
        let preemptedLock = try HeldShardLock(run: preempted, shard: 0)
        let slowWait = try BackgroundCLI(["submit", slow, "--wait", "--auto-retry", "1", "--partition", "urgent",
                                          "--time", "1", "--mem", "1G", "--cpus-per-task", "1"])
        let preemptedWait = try BackgroundCLI(["submit", preempted, "--wait", "--time", "10", "--mem", "1G", "--cpus-per-task", "1"])
        try Self.waitFor("both shards running", seconds: 60) {
            ShardLockProbe.isWaitedOn(run: slow) && ShardLockProbe.isWaitedOn(run: preempted)
        }
        let sbatch = Process()
        sbatch.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sbatch.arguments = ["sbatch", "--partition=urgent", "--cpus-per-task=1", "--mem=100M", "--output=/dev/null", "--wrap=sleep 2"]
        try sbatch.run()
        sbatch.waitUntilExit()
        #expect(sbatch.terminationStatus == 0)
        try Self.waitFor("the preemption", seconds: 60) { (try? Self.logText(preempted))?.contains("DUE TO PREEMPTION") == true }
        preemptedLock.release()
        try Self.waitFor("the time limit", seconds: 150) { (try? Self.logText(slow))?.contains("DUE TO TIME LIMIT") == true }
        slowLock.release()

        let slowResult = slowWait.finish()
        #expect(slowResult.status == 0, "\(slowResult.stderr)")
        #expect(slowResult.stderr.contains("auto-retry 1/1:") && slowResult.stderr.contains("shard 0: time 1 → 2 min after Slurm task")
                && slowResult.stderr.contains("hit its time limit (TIMEOUT)"), "\(slowResult.stderr)")
        #expect(try Self.arrays(slow, submission: 1).first?["time_limit_minutes"] as? Int == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: slow + "/results.csv")) == localTable(Self.de))

        let preemptedResult = preemptedWait.finish()
        #expect(preemptedResult.status == 0, "\(preemptedResult.stderr)")
        #expect(!preemptedResult.stderr.contains("retry"), "a requeued shard is followed, not resubmitted: \(preemptedResult.stderr)")
        #expect(try Self.submissions(preempted).count == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: preempted + "/results.csv")) == localTable(Self.de))
    }

    @Test func aControllerRestartedMidRunIsRiddenOut() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.did + ["--out", run, "--shards", "3"]).status == 0)
        let locks = try (0..<3).map { try HeldShardLock(run: run, shard: $0) }
        let waiting = try BackgroundCLI(["submit", run, "--wait", "--time", "10", "--mem", "1G", "--cpus-per-task", "1"])
        try Self.waitFor("a shard running", seconds: 60) { ShardLockProbe.isWaitedOn(run: run) }
        // Down for 25 s (Slurm's commands themselves ride out about 10 s of it, MessageTimeout):
        // status still answers from the run directory, and says Slurm did not.
        let restart = try BackgroundProcess(["bash", CLI.repository.appendingPathComponent("slurm/local-cluster.sh").path, "restart-controller", "25"])
        try Self.waitFor("slurmctld down", seconds: 40) { (try? CLI.run(["status", run]).stderr.contains("Slurm did not answer")) == true }
        let during = try CLI.run(["status", run, "--json"])
        #expect(during.status == 0, "\(during.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(during.stdout.utf8)) as? [String: Any])?["total"] as? Int == 3)
        let restarted = restart.finish()
        #expect(restarted.status == 0, "\(restarted.stderr)")
        locks.forEach { $0.release() }
        let result = waiting.finish()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("Slurm did not answer"), "the wait reports the outage: \(result.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == localTable(Self.did))
    }

    // MARK: - Helpers

    static func waitFor(_ what: String, seconds: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !condition() {
            guard Date() < deadline else { throw WaitTimeout(what: what, seconds: seconds) }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    struct WaitTimeout: Error, CustomStringConvertible {
        let what: String
        let seconds: Double
        var description: String { "waited \(Int(seconds)) s for \(what)" }
    }

    static func submissions(_ run: String) throws -> [[String: Any]] {
        let jobs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/slurm/jobs.json"))) as? [String: Any]
        return jobs?["submissions"] as? [[String: Any]] ?? []
    }

    static func arrays(_ run: String, submission: Int) throws -> [[String: Any]] {
        let all = try submissions(run)
        return all.indices.contains(submission) ? all[submission]["arrays"] as? [[String: Any]] ?? [] : []
    }

    /// RUN/logs/slurm-ARRAY_TASK.out of the first submission's task for `shard`.
    static func taskLog(_ run: String, shard: Int) throws -> String {
        let array = try #require(try arrays(run, submission: 0).first { ($0["shards"] as? [Int])?.contains(shard) == true })
        let job = try #require(array["job"] as? Int)
        let offset = array["offset"] as? Int ?? 0
        return run + "/logs/slurm-\(job)_\(shard - offset).out"
    }

    static func logText(_ run: String) throws -> String {
        try String(contentsOfFile: try taskLog(run, shard: 0), encoding: .utf8)
    }

    /// slurmstepd's "exceeded memory limit (USED > LIMIT)" numbers.
    static func memoryKill(in log: String) -> (used: Int, limit: Int)? {
        guard let range = log.range(of: "exceeded memory limit (") else { return nil }
        let numbers = log[range.upperBound...].prefix { $0 != ")" }.split(separator: ">").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return numbers.count == 2 ? (numbers[0], numbers[1]) : nil
    }
}

/// The test holds a shard's lock (flock on RUN/parts/NNNNN.lock), as a second worker on the same
/// shard would: the shard's worker starts, then waits for it.
final class HeldShardLock: @unchecked Sendable {
    private let lock = NSLock()
    private var fd: Int32

    init(run: String, shard: Int) throws {
        try FileManager.default.createDirectory(atPath: run + "/parts", withIntermediateDirectories: true)
        fd = open(run + "/parts/" + String(format: "%05d", shard) + ".lock", O_RDWR | O_CREAT, 0o644)
        guard fd >= 0, flock(fd, LOCK_EX) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    func release() {
        lock.withLock {
            guard fd >= 0 else { return }
            flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}

/// Whether a worker is waiting on a held shard lock: its process has one of the run's lock files
/// open. Files are compared by device and inode, not by path: a worker in Slurm 24.11's chroot
/// (slurm/lib/debian13.sh) has it open under a path that goes through the root.
enum ShardLockProbe {
    static func isWaitedOn(run: String) -> Bool {
        let parts = run + "/parts"
        let locks = Set(((try? FileManager.default.contentsOfDirectory(atPath: parts)) ?? []).filter { $0.hasSuffix(".lock") }
            .compactMap { identity(of: parts + "/" + $0) })
        guard !locks.isEmpty else { return false }
        for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(pid) != nil && Int32(pid) != getpid() {
            let fds = "/proc/\(pid)/fd"
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
                if let open = identity(of: "\(fds)/\(fd)"), locks.contains(open) { return true }
            }
        }
        return false
    }

    /// Device and inode of the file at `path` (an fd link resolves to the open file).
    struct Identity: Hashable { let device: UInt64, inode: UInt64 }
    static func identity(of path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}

/// A command running while the test goes on; `finish` waits for it and returns its output.
final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()
    private let out: URL
    private let err: URL

    init(_ arguments: [String], executable: URL = URL(fileURLWithPath: "/usr/bin/env")) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-bg-\(UUID().uuidString)")
        out = base.appendingPathExtension("out")
        err = base.appendingPathExtension("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
    }

    func finish() -> CLI.Result {
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        return CLI.Result(status: process.terminationStatus,
                          stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

/// `sctrial-plan ARGUMENTS` in the background.
final class BackgroundCLI: @unchecked Sendable {
    private let running: BackgroundProcess
    init(_ arguments: [String]) throws { running = try BackgroundProcess(arguments, executable: CLI.executable("sctrial-plan")) }
    func finish() -> CLI.Result { running.finish() }
}

/// Slurm refusing the third job of a submission (MaxJobCount, a QOS limit): what it accepted is
/// recorded, and the error says so with the way out.
@Suite struct PartialSubmissionTests {
    final class RefusingClient: SlurmClient, @unchecked Sendable {
        private let lock = NSLock()
        private var accepted = 0
        let acceptFirst: Int
        init(acceptFirst: Int) { self.acceptFirst = acceptFirst }
        func submit(_ request: SlurmJobRequest) throws(SlurmError) -> JobID {
            let number: Int? = lock.withLock {
                guard accepted < acceptFirst else { return nil }
                accepted += 1
                return 100 + accepted
            }
            guard let number else {
                throw .commandFailed(command: "sbatch", status: 1, message: "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying")
            }
            return JobID(number)
        }
        func states(of jobs: [JobID]) throws(SlurmError) -> [JobID: JobState] { [:] }
        func cancel(_ job: JobID) throws(SlurmError) {}
        func maxArraySize() throws(SlurmError) -> Int { 2 }
    }

    @Test func arraysSlurmAcceptedBeforeARefusalAreRecorded() throws {
        let run = "/var/tmp/sctrial-partial-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(SubmitTests.de + ["--out", run, "--shards", "5"]).status == 0)
        let executor = SlurmExecutor(client: RefusingClient(acceptFirst: 2), via: "sbatch", planner: "/bin/true", worker: "/bin/true",
                                     partitionLimits: { _ in nil })
        var options = SlurmSubmitOptions()
        options.timeMinutes = 10
        options.memoryMB = 1024
        #expect {
            try executor.submit(RunDirectory(run), options: options)
        } throws: { error in
            "\(error)".contains("Slurm accepted array jobs 101, 102, then refused the rest: sbatch failed (exit 1)")
                && "\(error)".contains("sctrial-plan retry \(run)")
        }
        let jobs = try #require(SlurmJobs.read(RunDirectory(run)))
        #expect(jobs.submissions.count == 1)
        #expect(jobs.submissions[0].arrays.map(\.job) == [101, 102])
        #expect(jobs.submissions[0].arrays.map(\.shards) == [[0, 1], [2, 3]])
        #expect(jobs.submissions[0].reduce == nil)
    }
}
