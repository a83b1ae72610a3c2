import Analyses
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
        let (plan, table) = try reportingFailure {
            let plan = try run.readPlan()
            return (plan, try DERun.execute(plan, run: run, threads: threads ?? plan.threads))
        }
        let seconds = (ContinuousClock.now - clock).components
        let discoveries = table.fdr.filter { $0 < 0.05 }.count
        FileHandle.standardError.write(Data(String(
            format: "%@: %d rows (%d targets × %d genes), %d at FDR < 0.05, %.2f s\n",
            run.resultsURL.path, table.rows.count, table.rows.count / max(1, plan.input.nVars), plan.input.nVars,
            discoveries, Double(seconds.seconds) + Double(seconds.attoseconds) * 1e-18).utf8))
    }
}

/// Runs `body`; input and run errors become one line on stderr and exit code 2.
func reportingFailure<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
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
