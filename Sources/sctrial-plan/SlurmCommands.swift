import ArgumentParser
import Foundation
import Orchestration

/// How to reach Slurm: sbatch and friends, or slurmrestd over HTTP.
struct SlurmConnection: ParsableArguments {
    enum Via: String, ExpressibleByArgument, CaseIterable { case sbatch, rest }

    @Option(help: "sbatch (the Slurm commands) or rest (slurmrestd over HTTP).")
    var via: Via?

    @Option(help: "slurmrestd URL for --via rest (default: $SLURMRESTD_URL).")
    var restURL: String?

    @Option(help: "File holding the JWT for --via rest (default: $SLURM_JWT). Get one with `scontrol token`.")
    var tokenFile: String?

    /// The executor over the client chosen here (or `recorded`, the way the run was submitted).
    func executor(recorded: String? = nil) throws -> SlurmExecutor {
        let choice = via ?? recorded.flatMap(Via.init(rawValue:)) ?? .sbatch
        let environment = ProcessInfo.processInfo.environment
        let client: any SlurmClient
        switch choice {
        case .sbatch:
            client = SlurmCommandClient()
        case .rest:
            guard let url = restURL ?? environment["SLURMRESTD_URL"] else {
                throw ValidationError("--via rest needs --rest-url or $SLURMRESTD_URL")
            }
            let token: String
            if let tokenFile {
                guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                    throw ValidationError("--token-file: cannot read \(tokenFile)")
                }
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else if let value = environment["SLURM_JWT"], !value.isEmpty {
                token = value
            } else {
                throw ValidationError("--via rest needs a token: set SLURM_JWT (eval $(scontrol token)) or pass --token-file")
            }
            // slurmrestd does not say MaxArraySize; scontrol does where it is installed.
            let maxArraySize = (try? SlurmCommandClient().maxArraySize()) ?? SlurmArraySplit.defaultMaxArraySize
            client = try SlurmRESTClient.connect(baseURL: url, token: token, maxArraySize: maxArraySize)
        }
        // Array tasks run the worker beside this executable; the reduce job runs this one.
        return SlurmExecutor(client: client, via: choice.rawValue,
                             planner: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                             worker: try LocalExecutor.findWorker())
    }
}

/// Resource flags shared by submit and retry.
struct SlurmResourceOptions: ParsableArguments {
    @Option(help: "Partition.") var partition: String?
    @Option(help: "Account.") var account: String?
    @Option(help: "Quality of service.") var qos: String?
    @Option(help: "Time limit per shard: minutes, HH:MM:SS or D-HH:MM:SS (default: from the plan's estimates and finished shards).")
    var time: String?
    @Option(help: "Memory per shard: 4000 (MB), 4000M, 4G (default: from the plan's estimates and finished shards' peak RSS).")
    var mem: String?
    @Option(help: "CPUs per shard (default: the plan's threads per worker).") var cpusPerTask: Int?
    @Option(help: "At most this many shards at once (the array's %K).") var maxConcurrent: Int?
    @Option(help: "Run each worker inside this Apptainer/Singularity image (apptainer exec; see docker/README.md).")
    var container: String?

    func options() throws -> SlurmSubmitOptions {
        var options = SlurmSubmitOptions()
        options.partition = partition
        options.account = account
        options.qos = qos
        options.timeMinutes = try time.map(Self.minutes)
        options.memoryMB = try mem.map(Self.megabytes)
        options.cpusPerTask = cpusPerTask
        options.maxConcurrent = maxConcurrent
        options.container = container
        if let cpusPerTask, cpusPerTask < 1 { throw ValidationError("--cpus-per-task must be at least 1") }
        if let maxConcurrent, maxConcurrent < 1 { throw ValidationError("--max-concurrent must be at least 1") }
        return options
    }

    /// Slurm's time formats (see `SlurmDuration`).
    static func minutes(_ text: String) throws -> Int {
        guard let minutes = SlurmDuration.minutes(text), minutes > 0 else {
            throw ValidationError("--time '\(text)': use minutes, HH:MM:SS or D-HH:MM:SS")
        }
        return minutes
    }

    static func megabytes(_ text: String) throws -> Int {
        let units: [Character: Int] = ["K": 0, "M": 1, "G": 1024, "T": 1024 * 1024]
        let upper = text.uppercased()
        if let last = upper.last, let factor = units[last], let value = Double(upper.dropLast()), value > 0 {
            return factor == 0 ? max(1, Int(value / 1024)) : Int((value * Double(factor)).rounded(.up))
        }
        guard let value = Int(text), value > 0 else { throw ValidationError("--mem '\(text)': use 4000 (MB), 4000M or 4G") }
        return value
    }
}

struct SubmitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit a plan's shards to Slurm as array jobs, then the reducer.",
        discussion: """
            One array job over the shards that are not done (throttled with --max-concurrent), split \
            into several arrays when the shard count exceeds the controller's MaxArraySize (each \
            array's indices start at 0 and map to shards through an offset); then the reduce job \
            with --dependency=afterok on every array and --kill-on-invalid-dep=yes, so a failed \
            shard never leaves it pending. Scripts go to sbatch on stdin (copies in RUN/slurm/), \
            job ids to RUN/slurm/jobs.json, logs to RUN/logs/. Inherited SLURM_* variables are \
            scrubbed. --time and --mem default to the plan's estimates, corrected by finished \
            shards' measured seconds and peak RSS; --pilot runs shard 0 first and sizes the rest \
            from it. The JWT for --via rest is never written anywhere.
            """)

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @OptionGroup var connection: SlurmConnection
    @OptionGroup var resources: SlurmResourceOptions

    @Flag(help: "Wait (polling with backoff) until the reduce job ends; exit non-zero if the run failed.")
    var wait = false

    @Flag(help: "Run shard 0 alone first, then size --time/--mem of the rest from its measured seconds and peak RSS.")
    var pilot = false

    @Option(help: ArgumentHelp("With --wait: resubmit shards that Slurm killed or lost up to N times (TIMEOUT: twice the time; out of memory: the measured overrun, at least twice the memory; node failure, preemption: the same).", valueName: "N"))
    var autoRetry = 0

    func validate() throws {
        guard autoRetry >= 0 else { throw ValidationError("--auto-retry must be 0 or more") }
        guard autoRetry == 0 || wait else { throw ValidationError("--auto-retry needs --wait (it resubmits when the wait ends)") }
    }

    func run() throws {
        let run = RunDirectory(runDirectory)
        var report = ""
        let ok = try reportingFailure { () throws -> Bool in
            let options = try resources.options()
            let executor = try connection.executor()
            let plan = try run.readPlan()
            if pilot, plan.shards.count > 1, !ShardWorker.isDone(plan, run: run, shard: 0) {
                let first = try executor.submit(run, options: options, shards: [0], withReduce: false)
                note("pilot: shard 0 submitted as job \(first.arrays.map { String($0.job) }.joined()); waiting for it")
                _ = try executor.wait(run, polling: SlurmPolling(), progress: { _ in })
                guard ShardWorker.isDone(plan, run: run, shard: 0) else {
                    throw OrchestrationError("\(run.path): the pilot shard 0 failed (see \(run.logsURL.path)/slurm-*.out); fix the cause and submit again")
                }
            }
            let submission = try executor.submit(run, options: options, shards: nil, withReduce: true)
            let arrays = submission.arrays.map { "\($0.job) (shards \($0.shards.first ?? 0)-\($0.shards.last ?? 0))" }
            note("submitted \(arrays.isEmpty ? "no shard (all done)" : "array job" + (arrays.count > 1 ? "s " : " ") + arrays.joined(separator: ", ")); reduce job \(submission.reduce.map(String.init) ?? "-") (\(submission.via))")
            guard wait else { return true }
            let ok = try waitRetrying(executor, run: run, options: options, autoRetry: autoRetry)
            if !ok { report = (try? executor.status(run).text) ?? "" }
            return ok
        }
        guard ok else {
            FileHandle.standardError.write(Data("sctrial-plan: error: \(run.path): the run failed (retry with `sctrial-plan retry \(run.path)`)\n\(report)\n".utf8))
            throw ExitCode(1)
        }
        if wait { note("\(run.resultsURL.path) written") }
    }
}

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Resubmit only the failed or missing shards (e.g. --array=3,7,12) and the reducer.",
        discussion: """
            Shards with a valid done marker, and shards still pending or running in Slurm, are never \
            resubmitted. Why each shard failed comes from Slurm and from its task's log \
            (RUN/logs/slurm-*.out): a shard killed at its time limit (TIMEOUT) gets twice the time, one \
            killed over its memory gets the measured overrun with a quarter of headroom, at least twice \
            the memory; both are capped by the partition's MaxTime and its nodes' memory, and a shard \
            already at the cap is reported instead of resubmitted. --time/--mem given here win. \
            Other shards (node failure, preemption, a worker error you have fixed) go with the same \
            resources. Same options as submit.
            """)

    @Argument(help: "The run directory.")
    var runDirectory: String

    @OptionGroup var connection: SlurmConnection
    @OptionGroup var resources: SlurmResourceOptions

    @Flag(help: "Wait until the reduce job ends; exit non-zero if the run failed.")
    var wait = false

    @Option(help: ArgumentHelp("With --wait: resubmit shards that Slurm killed or lost again, up to N more times.", valueName: "N"))
    var autoRetry = 0

    func validate() throws {
        guard autoRetry >= 0 else { throw ValidationError("--auto-retry must be 0 or more") }
        guard autoRetry == 0 || wait else { throw ValidationError("--auto-retry needs --wait (it resubmits when the wait ends)") }
    }

    func run() throws {
        let run = RunDirectory(runDirectory)
        let ok = try reportingFailure { () throws -> Bool in
            let options = try resources.options()
            let executor = try connection.executor(recorded: SlurmJobs.read(run)?.submissions.last?.via)
            guard try resubmit(executor, run: run, options: options, onlyRetryable: false) else { return false }
            guard wait else { return true }
            return try waitRetrying(executor, run: run, options: options, autoRetry: autoRetry)
        }
        if !ok { FileHandle.standardError.write(Data("sctrial-plan: error: \(run.path): the run failed\n".utf8)); throw ExitCode(1) }
    }
}

/// Waits for the run; while it failed and attempts are left, resubmits what Slurm killed or lost.
func waitRetrying(_ executor: SlurmExecutor, run: RunDirectory, options: SlurmSubmitOptions, autoRetry: Int) throws -> Bool {
    var ok = try executor.wait(run, polling: SlurmPolling(), progress: { note($0) })
    // The --time/--mem given are where escalation starts (jobs.json records them per array).
    var escalating = options
    escalating.timeMinutes = nil
    escalating.memoryMB = nil
    var attempt = 0
    while !ok && attempt < autoRetry {
        attempt += 1
        note("auto-retry \(attempt)/\(autoRetry):")
        guard try resubmit(executor, run: run, options: escalating, onlyRetryable: true) else { return false }
        ok = try executor.wait(run, polling: SlurmPolling(), progress: { note($0) })
    }
    return ok
}

/// Resubmits the shards that are neither done nor queued, with resources escalated by why they
/// failed, and the reducer; false (having said why) when there is nothing it may resubmit:
/// `onlyRetryable` refuses a person's cancel and worker errors, and a shard already at the
/// partition's ceiling is never resubmitted.
func resubmit(_ executor: SlurmExecutor, run: RunDirectory, options: SlurmSubmitOptions, onlyRetryable: Bool) throws -> Bool {
    let (status, faults) = try executor.inspect(run)
    let redo = status.shards.filter { $0.state != .done && $0.state != .running && $0.state != .pending }.map(\.index)
    if onlyRetryable {
        let fatal = redo.compactMap { shard in faults[shard].flatMap { $0.isRetryable ? nil : "shard \(shard): \($0.description)" } }
        guard fatal.isEmpty else {
            note("not resubmitting: " + fatal.prefix(5).joined(separator: "; ") + (fatal.count > 5 ? "; …" : "")
                 + " (fix the cause, then `sctrial-plan retry \(run.path)`)")
            return false
        }
    }
    let plan = try executor.retryPlan(run, shards: redo, faults: faults, options: options)
    for change in plan.changes { note(change) }
    guard plan.unfit.isEmpty else {
        let shown = plan.unfit.prefix(5).map { "shard \($0.shard): \($0.fault.description)" }.joined(separator: "; ")
        note("not resubmitting: \(shown): already at the partition's limit (choose a larger --partition, or plan more shards)")
        return false
    }
    let submission = try executor.submit(run, groups: plan.groups, options: options, withReduce: !status.reduced || !redo.isEmpty)
    note("resubmitted \(redo.count) shard\(redo.count == 1 ? "" : "s")\(redo.isEmpty ? "" : " (\(redo.prefix(12).map(String.init).joined(separator: ","))\(redo.count > 12 ? ",…" : ""))") as \(submission.arrays.map { String($0.job) }.joined(separator: ", ")); reduce job \(submission.reduce.map(String.init) ?? "-")")
    return true
}

struct CancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel every Slurm job the run submitted (arrays and reducer).",
        discussion: "Finished parts stay; `retry` resumes the rest.")

    @Argument(help: "The run directory.")
    var runDirectory: String

    @OptionGroup var connection: SlurmConnection

    func run() throws {
        let run = RunDirectory(runDirectory)
        try reportingFailure {
            guard let recorded = SlurmJobs.read(run) else { throw OrchestrationError("\(run.path): no Slurm jobs recorded (RUN/slurm/jobs.json)") }
            let jobs = try connection.executor(recorded: recorded.submissions.last?.via).cancel(run)
            note("cancelled \(jobs.map(\.description).joined(separator: ", "))")
        }
    }
}

func note(_ line: String) {
    FileHandle.standardError.write(Data("sctrial-plan: \(line)\n".utf8))
}
