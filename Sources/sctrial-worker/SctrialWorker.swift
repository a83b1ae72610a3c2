import Analyses
import AnnData
import ArgumentParser
import Foundation
import Orchestration
import Stats

/// Runs one shard of a planned run. Started by `sctrial-plan run` (local processes) or by a Slurm
/// array task; the run directory is its only input.
@main
struct SctrialWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sctrial-worker",
        abstract: "Run one shard of a planned sctrial-plan run.",
        discussion: """
            The shard index is --shard, or --shard-offset plus $SLURM_ARRAY_TASK_ID inside a Slurm \
            array task. Writes RUN/parts/NNNNN.part and then its done marker RUN/parts/NNNNN.done \
            (rows, sha256, seconds, peak RSS), both atomically; a shard with a valid marker is not \
            recomputed. Refuses an input changed since planning. Exit codes: 0 done, 2 bad input \
            or plan (never retried), 75 temporary failure (retried).
            """)

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @Option(help: "Shard index (default: --shard-offset + $SLURM_ARRAY_TASK_ID).")
    var shard: Int?

    @Option(help: "Added to $SLURM_ARRAY_TASK_ID (arrays split over MaxArraySize start at 0).")
    var shardOffset = 0

    @Option(help: "Threads (default: as planned).")
    var threads: Int?

    @Option(help: "Memory budget in GB (default: as planned).")
    var memory: Double?

    /// OpenBLAS's idle pool is stopped before anything else runs (see BLASThreads).
    static func main() {
        _ = BLASThreads.single
        main(nil)
    }

    func run() throws {
        let run = RunDirectory(runDirectory)
        do {
            let index = try resolveShard()
            switch try ShardWorker.run(run, shard: index, threads: threads, memoryGB: memory) {
            case .done(let rows, let seconds):
                FileHandle.standardError.write(Data(String(format: "sctrial-worker: shard %d: %d rows in %.2f s\n", index, rows, seconds).utf8))
            case .alreadyDone:
                FileHandle.standardError.write(Data("sctrial-worker: shard \(index) already done\n".utf8))
            }
        } catch let error as OrchestrationError {
            try fail(error.message, code: error.isTemporary ? 75 : 2)
        } catch let error as AnalysisError {
            try fail(error.message, code: 2)
        } catch let error as AnnDataError {
            try fail(error.description, code: 2)
        } catch let error as CocoaError {
            // Writing failed (disk full, permissions, a slow filesystem): worth a retry.
            try fail("\(run.path): \(error.localizedDescription)", code: 75)
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
        return shardOffset + value
    }
}
