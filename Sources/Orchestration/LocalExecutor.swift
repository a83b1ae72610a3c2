import Foundation

/// Set from the SIGINT/SIGTERM handler; read by the executor's wait loop.
nonisolated(unsafe) private var stopRequested: sig_atomic_t = 0

/// Runs a plan's missing shards as `sctrial-worker` processes on this machine, N at a time,
/// with per-shard logs, retries of temporary failures (exit 75 or a killed worker), a progress
/// line, and Ctrl-C that stops the workers and leaves a resumable run. Then the caller reduces.
public struct LocalExecutor {
    public var jobs: Int
    public var threads: Int?
    public var memoryGB: Double?
    /// Attempts after the first for a shard that failed temporarily.
    public var retries = 3
    /// The worker executable; found beside this one when nil (a one-shard plan needs none).
    public var workerPath: String?
    /// Where a shard computed in this process leaves its rows for the reduce that follows.
    public var computed: ComputedParts?

    public init(jobs: Int, threads: Int? = nil, memoryGB: Double? = nil, workerPath: String? = nil) {
        self.jobs = max(1, jobs)
        self.threads = threads
        self.memoryGB = memoryGB
        self.workerPath = workerPath
    }

    public enum Outcome: Sendable, Equatable {
        case complete(ran: Int)
        case failed(shards: [Int: String])
        case interrupted(done: Int, of: Int)
    }

    /// The worker executable beside this one (both are built and installed together), else on PATH.
    public static func findWorker() throws -> String {
        let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("sctrial-worker").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/sctrial-worker"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw OrchestrationError("sctrial-worker: not found beside sctrial-plan nor on PATH")
    }

    /// `plan`: the run's plan when the caller has read it already.
    public func run(_ run: RunDirectory, plan: Plan? = nil, progress: ProgressLine) throws -> Outcome {
        let plan = try plan ?? run.readPlan()
        try run.create()
        var pending = plan.shards.indices.filter { !ShardWorker.isDone(plan, run: run, shard: $0) }
        let total = plan.shards.count
        var done = total - pending.count
        if pending.isEmpty { return .complete(ran: 0) }
        progress.start(total: total, done: done)
        if total == 1 { return try runInProcess(run, plan: plan, progress: progress) }
        let workerPath = try self.workerPath ?? Self.findWorker()
        stopRequested = 0
        let previous = (installStopHandler(SIGINT), installStopHandler(SIGTERM))
        defer { restoreHandler(SIGINT, previous.0); restoreHandler(SIGTERM, previous.1) }

        var attempts: [Int: Int] = [:]
        var running: [pid_t: Int] = [:]
        var failures: [Int: String] = [:]
        var ran = 0
        pending.reverse()  // pop from the end, lowest shard first
        while !pending.isEmpty || !running.isEmpty {
            while stopRequested == 0, running.count < jobs, let shard = pending.popLast() {
                attempts[shard, default: 0] += 1
                running[try spawn(run, shard: shard, attempt: attempts[shard]!, workerPath: workerPath)] = shard
            }
            if running.isEmpty { break }
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR {
                    if stopRequested != 0 { for child in running.keys { kill(child, SIGTERM) } }
                    continue
                }
                throw OrchestrationError("waiting for workers: \(String(cString: strerror(errno)))")
            }
            guard let shard = running.removeValue(forKey: pid) else { continue }
            let exited = status & 0x7f == 0
            let code = exited ? (status >> 8) & 0xff : -1
            if exited && code == 0 {
                done += 1
                ran += 1
                progress.shardFinished(shard, done: done)
            } else if stopRequested != 0 {
                continue
            } else if (code == 75 || !exited) && attempts[shard]! <= retries {
                progress.note("shard \(shard) \(exited ? "failed temporarily (exit 75)" : "was killed by signal \(status & 0x7f)"); retry \(attempts[shard]!) of \(retries)")
                pending.append(shard)
            } else {
                let why = ShardFailure.read(run.failureURL(shard))?.message ?? (exited ? "exit \(code)" : "killed by signal \(status & 0x7f)")
                failures[shard] = why
                progress.note("shard \(shard) failed: \(why) (log: \(run.logURL(shard).path))")
            }
        }
        progress.finish()
        if stopRequested != 0 { return .interrupted(done: done, of: total) }
        if !failures.isEmpty { return .failed(shards: failures) }
        return .complete(ran: ran)
    }

    /// A one-shard plan runs in this process: a worker process would only add its start-up, and
    /// the part, marker and retries are the same.
    private func runInProcess(_ run: RunDirectory, plan: Plan, progress: ProgressLine) throws -> Outcome {
        var attempt = 0
        while true {
            attempt += 1
            do {
                _ = try ShardWorker.run(run, plan: plan, shard: 0, threads: threads, memoryGB: memoryGB, computed: computed)
                progress.shardFinished(0, done: 1)
                return .complete(ran: 1)
            } catch let error as OrchestrationError where error.isTemporary && attempt <= retries {
                progress.note("shard 0 failed temporarily (\(error.message)); retry \(attempt) of \(retries)")
            }
        }
    }

    /// Starts one worker with stdout and stderr appended to the shard's log.
    private func spawn(_ run: RunDirectory, shard: Int, attempt: Int, workerPath: String) throws -> pid_t {
        let log = run.logURL(shard).path
        let header = "== \(ISO8601DateFormatter().string(from: Date())) attempt \(attempt): \(workerPath) \(run.path) --shard \(shard)\n"
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            _ = header.withCString { Foundation.write(fd, $0, strlen($0)) }
            close(fd)
        }
        var arguments = [workerPath, run.path, "--shard", String(shard)]
        if let threads { arguments += ["--threads", String(threads)] }
        if let memoryGB { arguments += ["--memory", String(memoryGB)] }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Workers start with default signal handling and nothing blocked, whatever we inherited.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, workerPath, &actions, &attributes, &argv, environ)
        guard result == 0 else {
            throw OrchestrationError("\(workerPath): cannot start a worker: \(String(cString: strerror(result)))")
        }
        return pid
    }

    private func installStopHandler(_ signalNumber: Int32) -> sigaction {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in stopRequested = 1 }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: waitpid returns EINTR so the loop can react
        var previous = sigaction()
        sigaction(signalNumber, &action, &previous)
        // A parent may have blocked the signal (test runners, some job launchers): unblock it.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, signalNumber)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        return previous
    }

    private func restoreHandler(_ signalNumber: Int32, _ previous: sigaction) {
        var previous = previous
        sigaction(signalNumber, &previous, nil)
    }
}

/// Progress of a local run on stderr: a redrawn bar with an ETA on a terminal, plain lines
/// otherwise (logs, CI).
public final class ProgressLine {
    private let terminal: Bool
    private var total = 0
    private var startDone = 0
    private var started = ContinuousClock.now

    public init(terminal: Bool = isatty(2) == 1) { self.terminal = terminal }

    func start(total: Int, done: Int) {
        self.total = total
        startDone = done
        started = ContinuousClock.now
        emit("running \(total - done) of \(total) shards" + (done > 0 ? " (\(done) already done)" : ""))
        if terminal { draw(done: done) }
    }

    func shardFinished(_ shard: Int, done: Int) {
        if terminal { draw(done: done) } else { emit("shard \(shard) done (\(done)/\(total), \(elapsedText()))") }
    }

    func note(_ line: String) {
        if terminal { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
        emit(line)
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func elapsed() -> Double { Planner.seconds(since: started) }
    private func elapsedText() -> String { String(format: "%.1f s", elapsed()) }

    private func draw(done: Int) {
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let ran = done - startDone
        let eta = ran > 0 ? String(format: ", ETA %.0f s", elapsed() / Double(ran) * Double(total - done)) : ""
        FileHandle.standardError.write(Data("\r\u{1b}[K[\(bar)] \(done)/\(total) shards, \(elapsedText())\(eta)".utf8))
    }

    private func emit(_ line: String) {
        FileHandle.standardError.write(Data("sctrial-plan: \(line)\n".utf8))
    }
}
