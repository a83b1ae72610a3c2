import Analyses
import ArgumentParser
import Foundation
import Orchestration

/// Runs one shard of a planned run. Started by `sctrial-plan run` (local processes) or by a Slurm
/// array task; the run directory is its only input.
@main
struct SctrialWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sctrial-worker",
        abstract: "Run one shard of a planned sctrial-plan run.",
        discussion: """
            The shard index comes from --shard, or from $SLURM_ARRAY_TASK_ID inside a Slurm array \
            task. Plans of this version have a single shard (0), whose output is RUN/results.csv. \
            Exit codes: 0 done, 2 bad input (never retried), 75 temporary failure (retried).
            """)

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @Option(help: "Shard index (default: $SLURM_ARRAY_TASK_ID).")
    var shard: Int?

    @Option(help: "Threads (default: as planned).")
    var threads: Int?

    func run() throws {
        let run = RunDirectory(runDirectory)
        do {
            let index = try resolveShard()
            let plan = try run.readPlan()
            guard index == 0 else { throw OrchestrationError("\(run.planURL.path): shard \(index) does not exist (the plan has 1 shard, 0)") }
            switch plan.analysis.kind {
            case .de: _ = try DERun.execute(plan, run: run, threads: threads ?? plan.threads)
            case .did: _ = try DiDRun.execute(plan, run: run)
            }
        } catch let error as OrchestrationError {
            try fail(error.message, code: 2)
        } catch let error as AnalysisError {
            try fail(error.message, code: 2)
        } catch let error as CocoaError {
            // Writing the result failed (disk full, permissions, a slow filesystem): worth a retry.
            try fail("\(run.resultsURL.path): \(error.localizedDescription)", code: 75)
        }
    }

    private func fail(_ message: String, code: Int32) throws {
        FileHandle.standardError.write(Data("sctrial-worker: error: \(message)\n".utf8))
        throw ExitCode(code)
    }

    private func resolveShard() throws(OrchestrationError) -> Int {
        if let shard {
            guard shard >= 0 else { throw OrchestrationError("--shard must be 0 or more, got \(shard)") }
            return shard
        }
        guard let text = ProcessInfo.processInfo.environment["SLURM_ARRAY_TASK_ID"] else {
            throw OrchestrationError("no shard given: pass --shard I or run inside a Slurm array task")
        }
        guard let value = Int(text), value >= 0 else {
            throw OrchestrationError("SLURM_ARRAY_TASK_ID is '\(text)', not a shard index")
        }
        return value
    }
}
