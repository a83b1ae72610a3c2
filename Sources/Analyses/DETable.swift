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
                           budget: ReadBudget = .default, gatherBudget: Int = 1 << 30) throws(AnalysisError) -> DETable {
        try AnalysisError.converting(path) {
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
            let genes = file.nVars
            let engine = DifferentialExpression(parameters: parameters, design: design, isLog1p: log1p,
                                                geneNames: try file.vars.index())
            let targets = Array(design.targets.indices)
            // The gene-major copy of the cells in play holds ~28 bytes per non-zero while it is
            // built; past the budget, genes go in windows (each re-reads the rows in play).
            let entries = try estimatedEntries(matrix, rows: design.rowsInPlay)
            let windows = max(1, min(genes, Int((Double(entries) * 28 / Double(gatherBudget)).rounded(.up))))
            let width = max(1, (genes + windows - 1) / windows)
            var rows = [DERow]()
            rows.reserveCapacity(targets.count * genes)
            var byWindow: [[DERow]] = []
            for start in stride(from: 0, to: genes, by: width) {
                let window = start..<min(genes, start + width)
                let slab = try matrix.gatherColumns(rows: design.rowsInPlay, columns: window)
                byWindow.append(engine.rows(targets: targets, slab: slab, threads: threads))
            }
            // pdex's order: target-major, genes in var order across windows.
            for k in targets.indices {
                for (w, window) in byWindow.enumerated() {
                    let size = min(genes, (w + 1) * width) - w * width
                    rows += window[(k * size)..<((k + 1) * size)]
                }
            }
            return DETable(rows: rows)
        }
    }

    /// Stored entries in the rows in play: exact for CSR (from indptr), proportional otherwise.
    static func estimatedEntries(_ matrix: MatrixReader, rows: [Int]?) throws(AnnDataError) -> Int {
        let info = matrix.info
        guard let rows else { return info.nnz }
        if info.format == .csr {
            let indptr = try matrix.indptr()
            return rows.reduce(0) { $0 + indptr[$1 + 1] - indptr[$1] }
        }
        return Int(Double(info.nnz) * Double(rows.count) / Double(max(1, info.nRows)))
    }
}
