import Analyses
import AnnData
import ArgumentParser
import Foundation
import Orchestration

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Compute a planned run and write RUN/results.csv.",
        discussion: "Refuses if the input file changed since planning. results.csv is written under a temporary name and renamed, so it is never half-written.")

    @Argument(help: "The run directory written by `sctrial-plan plan`.")
    var runDirectory: String

    @Option(help: "Threads (default: as planned).")
    var threads: Int?

    func run() throws {
        let clock = ContinuousClock.now
        let run = RunDirectory(runDirectory)
        let summary = try reportingFailure { () throws -> String in
            let plan = try run.readPlan()
            switch plan.analysis.kind {
            case .de:
                let table = try DERun.execute(plan, run: run, threads: threads ?? plan.threads)
                return "\(table.rows.count) rows, \(table.fdr.filter { $0 < 0.05 }.count) at FDR < 0.05"
            case .did:
                let table = try DiDRun.execute(plan, run: run)
                for (celltype, why) in table.skipped {
                    FileHandle.standardError.write(Data("sctrial-plan: warning: cell type \(celltype) skipped: \(why)\n".utf8))
                }
                return "\(table.rows.count) rows, \(table.rows.filter { $0.fdr < 0.05 }.count) at FDR_DiD < 0.05"
            }
        }
        let seconds = (ContinuousClock.now - clock).components
        FileHandle.standardError.write(Data(String(
            format: "%@: %@, %.2f s\n", run.resultsURL.path, summary,
            Double(seconds.seconds) + Double(seconds.attoseconds) * 1e-18).utf8))
    }
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
    } catch let error as ValidationError {
        throw error
    }
}

private func fail<T>(_ message: String) throws -> T {
    FileHandle.standardError.write(Data("sctrial-plan: error: \(message)\n".utf8))
    throw ExitCode(2)
}
