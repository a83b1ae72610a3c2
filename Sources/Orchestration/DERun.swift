import Analyses
import AnnData
import Foundation

/// Plans and runs perturbation DE. Until sharding lands, a run computes in process.
public enum DERun {
    /// Validates the design against the file (column, reference, groups, layer), settles log1p
    /// with one pass over the matrix, checks the data suits the options, and writes the plan.
    public static func plan(input path: String, parameters: DEParameters, run: RunDirectory, threads: Int) throws -> Plan {
        let file: AnnDataFile
        do {
            file = try AnnDataFile(path: path)
            let labels = try file.obs.column(parameters.groupbyKey, expectedCount: file.nObs).labels()
            let design = try DEDesign(labels: labels, parameters: parameters, file: path)
            if let groups = parameters.groups {
                let absent = groups.filter { !design.targets.contains($0) && $0 != design.referenceName }
                if absent.count == groups.count {
                    throw AnalysisError("\(path): none of --groups (\(groups.joined(separator: ", "))) is a label of obs column '\(parameters.groupbyKey)'")
                }
            }
            let matrix = try file.matrix(parameters.layer ?? "X")
            let profile = try DifferentialExpression.profile(matrix)
            let isLog1p: Bool
            switch parameters.isLog1p {
            case .yes: isLog1p = true
            case .no: isLog1p = false
            case .auto: isLog1p = profile.looksLog1p
            }
            if !isLog1p, profile.minimum < 0 {
                throw AnalysisError("\(path): \(matrix.info.path) has negative values (minimum \(profile.minimum)); fold changes of means need non-negative expression: give counts or normalised data (--layer), or --is-log1p true for log1p data")
            }
            if profile.nonFinite > 0 {
                throw AnalysisError("\(path): \(matrix.info.path) has \(profile.nonFinite) non-finite values (NaN or inf)")
            }
            let stamp = try Plan.fileStamp(path)
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            let plan = Plan(input: .init(path: absolute, sizeBytes: stamp.size, modified: stamp.modified, nObs: file.nObs, nVars: file.nVars),
                            analysis: .de(parameters, isLog1p: isLog1p), threads: threads)
            try run.create()
            try run.write(plan)
            return plan
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        }
    }

    /// Computes the whole table and writes `results.csv` atomically.
    public static func execute(_ plan: Plan, run: RunDirectory, threads: Int) throws -> DETable {
        guard let de = plan.analysis.de else {
            throw OrchestrationError("\(run.planURL.path): not a DE plan")
        }
        try plan.checkInputUnchanged()
        var parameters = de.parameters
        parameters.isLog1p = de.isLog1p ? .yes : .no
        let table = try DifferentialExpression.run(path: plan.input.path, parameters: parameters, threads: threads)
        try AtomicFile.stream(to: run.resultsURL) { writer in
            try writer.append(DETable.columns.joined(separator: ",") + "\n")
            // Target and reference repeat on every gene's row: quote them once per target.
            var quoted: [String: String] = [:]
            var line = ""
            for (row, fdr) in zip(table.rows, table.fdr) {
                let target = quoted[row.target] ?? { let q = CSVText.field(row.target); quoted[row.target] = q; return q }()
                let reference = quoted[row.reference] ?? { let q = CSVText.field(row.reference); quoted[row.reference] = q; return q }()
                line.removeAll(keepingCapacity: true)
                line += target; line += ","
                line += reference; line += ","
                line += CSVText.field(row.feature); line += ","
                for value in [row.targetMean, row.referenceMean, row.percentChange, row.foldChange, row.pValue, row.statistic] {
                    line += CSVText.number(value); line += ","
                }
                line += CSVText.number(fdr); line += "\n"
                try writer.append(line)
            }
        }
        return table
    }
}
