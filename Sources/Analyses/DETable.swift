import AnnData
import Foundation
import Stats

/// A whole differential-expression result: pdex's rows with BH FDR over all of them.
public struct DETable: Sendable, Equatable {
    public var rows: [DERow]
    public var fdr: [Double]

    public static let columns = ["target", "reference", "feature", "target_mean", "reference_mean",
                                 "percent_change", "fold_change", "p_value", "statistic", "fdr"]

    /// BH as pdex computes it: scipy's `false_discovery_control` over every row's p-value (NaN
    /// p-values were already replaced by 1).
    public init(rows: [DERow]) {
        self.rows = rows
        fdr = (try? BenjaminiHochberg.scipy(rows.map(\.pValue))) ?? rows.map(\.pValue)
    }
}

extension DifferentialExpression {
    /// Everything `plan de` + `run` do for one file, in process: resolve the design, detect log1p,
    /// gather the cells in play gene-major, test every target × gene, add FDR.
    public static func run(path: String, parameters: DEParameters, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                           budget: ReadBudget = .default) throws(AnalysisError) -> DETable {
        do {
            let file = try AnnDataFile(path: path)
            let labels = try file.obs.column(parameters.groupbyKey, expectedCount: file.nObs).labels()
            let design = try DEDesign(labels: labels, parameters: parameters, file: path)
            let matrix = try file.matrix(parameters.layer ?? "X", budget: budget)
            let log1p: Bool
            switch parameters.isLog1p {
            case .yes: log1p = true
            case .no: log1p = false
            case .auto: log1p = try profile(matrix).looksLog1p
            }
            let engine = DifferentialExpression(parameters: parameters, design: design, isLog1p: log1p,
                                                geneNames: try file.vars.index())
            let slab = try matrix.gatherColumns(rows: design.rowsInPlay)
            return DETable(rows: engine.rows(targets: Array(design.targets.indices), slab: slab, threads: threads))
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        } catch let error as AnalysisError {
            throw error
        } catch {
            throw AnalysisError("\(path): \(error)")
        }
    }
}
