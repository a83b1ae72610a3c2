import Analyses
import AnnData
import ArgumentParser
import Foundation
import Orchestration

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a plan's shards on this machine, then reduce them into RUN/results.csv.",
        discussion: """
            Starts N sctrial-worker processes at a time, one per shard, each logging to \
            RUN/logs/shard-NNNNN.log. A shard that fails temporarily (exit 75, or a worker killed) \
            is retried up to 3 times; bad input (exit 2) is not. Ctrl-C stops the workers and \
            leaves the run resumable: running again runs only the shards without a valid done \
            marker, then reduces. Workers refuse an input changed since planning.
            """)

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Worker processes at once (default: one per core, divided by the threads per worker).")
    var jobs: Int?

    @Option(help: "Threads per worker (default: as planned).")
    var threads: Int?

    @Option(help: "Memory budget per worker in GB (default: as planned).")
    var memory: Double?

    func validate() throws {
        if let jobs, jobs < 1 { throw ValidationError("-j must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let memory, !(memory > 0) { throw ValidationError("--memory must be a positive number of GB") }
    }

    func run() throws {
        let clock = ContinuousClock.now
        let run = RunDirectory(runDirectory)
        let summary = try reportingFailure { try runAndReduce(run, plan: run.readPlan()) }
        report(summary, run: run, since: clock)
    }

    /// Runs the plan's prerequisite first when it is not reduced yet (GSEA's DiD), then the
    /// plan's missing shards, then reduces.
    func runAndReduce(_ run: RunDirectory, plan: Plan) throws -> RunSummary {
        if let prerequisite = plan.prerequisite {
            let inner = RunDirectory(run.resolve(prerequisite).path)
            let innerPlan = try inner.readPlan()
            if !Reducer.isReduced(inner, plan: innerPlan) {
                let clock = ContinuousClock.now
                FileHandle.standardError.write(Data("sctrial-plan: first the prerequisite \(inner.path) (\(innerPlan.analysis.name), \(innerPlan.shards.count) shards)\n".utf8))
                report(try runAndReduce(inner, plan: innerPlan), run: inner, since: clock)
            }
        }
        let perWorker = threads ?? plan.resources.threads
        let workers = jobs ?? max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, perWorker))
        var executor = LocalExecutor(jobs: workers, threads: threads, memoryGB: memory)
        executor.computed = ComputedParts()
        switch try executor.run(run, plan: plan, progress: ProgressLine()) {
        case .complete:
            return try Reducer.reduce(run, plan: plan, computed: executor.computed)
        case .failed(let shards):
            let listed = shards.keys.sorted().map(String.init).joined(separator: ", ")
            throw OrchestrationError("\(run.path): shard\(shards.count == 1 ? "" : "s") \(listed) failed (see \(run.logsURL.path)/); fix the cause and run again to resume")
        case .interrupted(let done, let total):
            FileHandle.standardError.write(Data("sctrial-plan: interrupted with \(done)/\(total) shards done; `sctrial-plan run \(run.path)` resumes\n".utf8))
            throw ExitCode(130)
        }
    }
}

struct ReduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reduce",
        abstract: "Check every shard's part, concatenate, recompute FDR, write RUN/results.csv and summary.json.",
        discussion: """
            Every done marker must match the plan and its part's sha256; a corrupted part is refused \
            and named. FDR is recomputed over the whole table as the reference does, so the table is \
            identical whatever the shard count. With missing shards the reduce is refused, unless \
            --allow-partial: the table then goes to RUN/results.partial.csv and summary.json lists \
            the missing shards.
            """)

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Flag(help: "Reduce the shards that are done even if some are missing (written to results.partial.csv).")
    var allowPartial = false

    func run() throws {
        let clock = ContinuousClock.now
        let run = RunDirectory(runDirectory)
        let summary = try reportingFailure { try Reducer.reduce(run, allowPartial: allowPartial) }
        report(summary, run: run, since: clock)
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per shard: done, running, failed or missing; and overall progress.",
        discussion: "Read from the run directory's done markers, locks and failure records, which are the truth; for a submitted run, Slurm's queue adds which shards are pending or running (a job Slurm forgot is never taken as done).")

    @Argument(help: "The run directory.")
    var runDirectory: String

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var connection: SlurmConnection

    func run() throws {
        let run = RunDirectory(runDirectory)
        let status = try reportingFailure { () throws -> RunStatus in
            guard let recorded = SlurmJobs.read(run) else { return try RunStatus.read(run) }
            // Slurm adds pending/running detail; the markers stay the truth when it cannot answer.
            do {
                return try connection.executor(recorded: recorded.submissions.last?.via).status(run)
            } catch let error as SlurmError {
                note("warning: Slurm did not answer (\(error)); showing the run directory only")
                return try RunStatus.read(run)
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
        } else {
            print(status.text)
        }
    }
}

private func report(_ summary: RunSummary, run: RunDirectory, since clock: ContinuousClock.Instant) {
    let elapsed = (ContinuousClock.now - clock).components
    let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    var line = "\(run.url.appendingPathComponent(summary.results).path): \(summary.rows) rows, \(summary.discoveriesAt005) at \(summary.fdrColumn) < 0.05, \(String(format: "%.2f", seconds)) s"
    if summary.partial { line += "; PARTIAL: shards \(summary.missingShards.map(String.init).joined(separator: ", ")) missing" }
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Runs `body`; input, analysis and run errors become one line on stderr and exit code 2.
func reportingFailure<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as AnnDataError {
        return try fail(error.description)
    } catch let error as AnalysisError {
        return try fail(error.description)
    } catch let error as OrchestrationError {
        return try fail(error.description)
    } catch let error as SlurmError {
        return try fail(error.description)
    }
}

private func fail<T>(_ message: String) throws -> T {
    FileHandle.standardError.write(Data("sctrial-plan: error: \(message)\n".utf8))
    throw ExitCode(2)
}
