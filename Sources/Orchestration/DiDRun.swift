import Analyses
import AnnData
import Foundation

/// Plans and runs difference-in-differences. Until sharding lands, a run computes in process.
public enum DiDRun {
    /// Checks the design against the file by resolving it fully (columns, visits, arms, features,
    /// paired participants), then writes the plan.
    public static func plan(input path: String, parameters: DiDParameters, run: RunDirectory, threads: Int) throws -> Plan {
        let file: AnnDataFile
        do { file = try AnnDataFile(path: path) } catch { throw AnalysisError(error) }
        try DiDAnalysis.validate(path: path, parameters: parameters)
        let stamp = try Plan.fileStamp(path)
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let plan = Plan(input: .init(path: absolute, sizeBytes: stamp.size, modified: stamp.modified, nObs: file.nObs, nVars: file.nVars),
                        analysis: .did(parameters), threads: threads)
        try run.create()
        try run.write(plan)
        return plan
    }

    /// Computes the table and writes `results.csv` atomically.
    public static func execute(_ plan: Plan, run: RunDirectory) throws -> DiDTable {
        guard let parameters = plan.analysis.did else {
            throw OrchestrationError("\(run.planURL.path): not a DiD plan")
        }
        try plan.checkInputUnchanged()
        let table = try DiDAnalysis.run(path: plan.input.path, parameters: parameters)
        try AtomicFile.stream(to: run.resultsURL) { try $0.append(table.csv()) }
        return table
    }
}
