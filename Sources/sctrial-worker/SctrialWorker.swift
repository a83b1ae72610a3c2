import ArgumentParser
import Foundation

/// Runs one shard of a planned run. Started by `sctrial-plan run` (local processes) or by a Slurm
/// array task; the run directory is its only input.
@main
struct SctrialWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sctrial-worker",
        abstract: "Run one shard of a planned sctrial-plan run.",
        discussion: """
            The shard index comes from --shard, or from $SLURM_ARRAY_TASK_ID inside a Slurm array \
            task. Exit codes: 0 done, 2 bad input (never retried), 75 temporary failure (retried).
            """)

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @Option(help: "Shard index (default: $SLURM_ARRAY_TASK_ID).")
    var shard: Int?

    func run() throws {
        do {
            let index = try resolveShard()
            let plan = URL(fileURLWithPath: runDirectory).appendingPathComponent("plan.json")
            guard FileManager.default.fileExists(atPath: plan.path) else {
                throw WorkerError("\(plan.path): no plan in this run directory (create one with `sctrial-plan plan`)")
            }
            throw WorkerError("\(plan.path): shard \(index): this build cannot execute plans yet (no analysis is registered)")
        } catch let error as WorkerError {
            FileHandle.standardError.write(Data("sctrial-worker: error: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func resolveShard() throws(WorkerError) -> Int {
        if let shard {
            guard shard >= 0 else { throw WorkerError("--shard must be 0 or more, got \(shard)") }
            return shard
        }
        guard let text = ProcessInfo.processInfo.environment["SLURM_ARRAY_TASK_ID"] else {
            throw WorkerError("no shard given: pass --shard I or run inside a Slurm array task")
        }
        guard let value = Int(text), value >= 0 else {
            throw WorkerError("SLURM_ARRAY_TASK_ID is '\(text)', not a shard index")
        }
        return value
    }
}

struct WorkerError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
