import AnnData
import Dispatch
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

/// What one shard of a DE run computes: contiguous ranges of the targets and of the genes.
public struct DESelection: Sendable {
    /// Indices into `DEDesign.targets` (nil: all).
    public var targets: Range<Int>?
    /// Gene (var) indices (nil: all).
    public var genes: Range<Int>?
    /// A gene-major copy of the matrix to read instead of the input.
    public var stagedMatrix: String?

    public init(targets: Range<Int>? = nil, genes: Range<Int>? = nil, stagedMatrix: String? = nil) {
        self.targets = targets
        self.genes = genes
        self.stagedMatrix = stagedMatrix
    }
}

/// One shard's rows, target-major over `targets` × `genes`, without FDR: numbers only (16M rows
/// at K562 scale), the names being the design's.
public struct DEShardResult: Sendable {
    public var targets: Range<Int>
    public var genes: Range<Int>
    public var rows: [DEValues]
    /// `DEDesign.targets`, `DEDesign.referenceName` and the var names the indices refer to.
    public var targetNames: [String]
    public var referenceName: String
    public var geneNames: [String]

    /// The rows with their names.
    public func namedRows() -> [DERow] {
        var named: [DERow] = []
        named.reserveCapacity(rows.count)
        var position = 0
        for target in targets {
            for gene in genes {
                named.append(DERow(target: targetNames[target], reference: referenceName, feature: geneNames[gene],
                                   values: rows[position]))
                position += 1
            }
        }
        return named
    }
}

extension DifferentialExpression {
    /// Everything `plan de` + `run` do for one file, in process: resolve the design, detect log1p,
    /// gather the cells in play gene-major, test every target × gene, add FDR.
    public static func run(path: String, parameters: DEParameters, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                           budget: ReadBudget = .default, gatherBudget: Int = 1 << 30) throws(AnalysisError) -> DETable {
        DETable(rows: try shard(path: path, parameters: parameters, selection: DESelection(), threads: threads,
                                budget: budget, gatherBudget: gatherBudget).namedRows())
    }

    /// One shard: the rows of its targets (and the reference) gathered gene-major over its genes,
    /// in windows past `gatherBudget`, every target × gene tested.
    public static func shard(path: String, parameters: DEParameters, selection: DESelection,
                             threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                             budget: ReadBudget = .default, gatherBudget: Int = 1 << 30) throws(AnalysisError) -> DEShardResult {
        try AnalysisError.converting(path) {
            let file = try AnnDataFile(path: path)
            let labels = try file.obs.column(parameters.groupbyKey, expectedCount: file.nObs).labels()
            let design = try DEDesign(labels: labels, parameters: parameters, file: path)
            let original = try file.matrix(parameters.layer ?? "X", budget: budget)
            let matrix = try selection.stagedMatrix.map { staged throws(AnnDataError) in
                try GeneMajorCopy.open(staged, expectedRows: file.nObs, expectedCols: file.nVars, budget: budget)
            } ?? original
            let log1p: Bool
            switch parameters.isLog1p {
            case .yes: log1p = true
            case .no: log1p = false
            case .auto: log1p = try profile(original).looksLog1p
            }
            let genes = selection.genes ?? 0..<file.nVars
            let targetRange = selection.targets ?? design.targets.indices
            guard genes.lowerBound >= 0, genes.upperBound <= file.nVars,
                  targetRange.lowerBound >= 0, targetRange.upperBound <= design.targets.count else {
                throw AnalysisError("\(path): shard asks for targets \(targetRange) and genes \(genes), but the file has \(design.targets.count) targets and \(file.nVars) genes; plan the run again")
            }
            let engine = DifferentialExpression(parameters: parameters, design: design, isLog1p: log1p,
                                                geneNames: try file.vars.index())
            let targets = Array(targetRange)
            let rowsInPlay = design.rowsInPlay(targets: targets)
            // The gene-major copy of the cells in play holds ~28 bytes per non-zero while it is
            // built; past the budget, genes go in windows (each re-reads the rows in play), and
            // the next window is gathered while this one is tested, so a window then gets
            // 40 bytes per non-zero (12 held for testing, 28 gathering).
            let entries = try estimatedEntries(original, rows: rowsInPlay) * max(1, genes.count) / max(1, file.nVars)
            let needed = { (bytesPerEntry: Double) in
                max(1, min(genes.count, Int((Double(entries) * bytesPerEntry / Double(gatherBudget)).rounded(.up))))
            }
            let windowCount = needed(28) == 1 ? 1 : needed(40)
            let width = max(1, (genes.count + windowCount - 1) / windowCount)
            let windows = stride(from: genes.lowerBound, to: genes.upperBound, by: width).map { $0..<min(genes.upperBound, $0 + width) }
            // Each window's results go straight to their place in pdex's order (target-major,
            // genes in var order across windows).
            let rows = try [DEValues](unsafeUninitializedCapacity: targets.count * genes.count) { buffer, initialized in
                guard !targets.isEmpty, let first = windows.first else { return }
                nonisolated(unsafe) let output = buffer
                var slab = try matrix.gatherColumns(rows: rowsInPlay, columns: first)
                for (i, window) in windows.enumerated() {
                    // Window i is tested in the background while this thread (the file's only
                    // reader, and one malloc arena for the big arrays) gathers window i + 1.
                    let testing = DispatchGroup()
                    let tested = slab
                    DispatchQueue.global().async(group: testing) {
                        engine.test(targets: targets, slab: tested, threads: threads,
                                    into: UnsafeMutableBufferPointer(rebasing: output[(window.lowerBound - genes.lowerBound)...]),
                                    rowStride: genes.count)
                    }
                    let next = i + 1 < windows.count
                        ? Result { () throws(AnnDataError) in try matrix.gatherColumns(rows: rowsInPlay, columns: windows[i + 1]) } : nil
                    testing.wait()
                    if let next { slab = try next.get() }
                }
                initialized = buffer.count
            }
            return DEShardResult(targets: targetRange, genes: genes, rows: rows, targetNames: design.targets,
                                 referenceName: design.referenceName, geneNames: engine.geneNames)
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
