import AnnData
import Dispatch
import Foundation
import Synchronization
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
            let lanes = max(1, threads)
            let windows = try geneWindows(matrix, genes: genes, rows: rowsInPlay, gatherBudget: gatherBudget, lanes: lanes)
            // Windows are gathered `lanes` at a time, one per thread (each reads the rows in play
            // and keeps its own genes), then tested. Each window's results go straight to their
            // place in pdex's order (target-major, genes in var order across windows).
            // The reader caches its indptr on first use: read it here, before threads share it.
            if matrix.info.format != .dense { _ = try matrix.indptr() }
            nonisolated(unsafe) let reader = matrix
            let rows = try [DEValues](unsafeUninitializedCapacity: targets.count * genes.count) { buffer, initialized in
                guard !targets.isEmpty else { return }
                for round in stride(from: 0, to: windows.count, by: lanes) {
                    let batch = Array(windows[round..<min(windows.count, round + lanes)])
                    let gathered = Mutex([Result<ColumnWindow, AnnDataError>?](repeating: nil, count: batch.count))
                    DispatchQueue.concurrentPerform(iterations: batch.count) { k in
                        let result = Result { () throws(AnnDataError) in
                            try reader.gatherColumnMajor(rows: rowsInPlay, columns: batch[k].genes, counts: batch[k].counts)
                        }
                        gathered.withLock { $0[k] = result }
                    }
                    for (window, result) in zip(batch, gathered.withLock { $0 }) {
                        engine.test(targets: targets, window: try result!.get(), threads: threads,
                                    into: UnsafeMutableBufferPointer(rebasing: buffer[(window.genes.lowerBound - genes.lowerBound)...]),
                                    rowStride: genes.count)
                    }
                }
                initialized = buffer.count
            }
            return DEShardResult(targets: targetRange, genes: genes, rows: rows, targetNames: design.targets,
                                 referenceName: design.referenceName, geneNames: engine.geneNames)
        }
    }

    /// Gene windows, `lanes` of them gathered at once, whose copies together fit
    /// `gatherBudget`: the genes in `lanes` windows if they fit, else windows of a lane's share
    /// of the budget. From CSR they are cut by exact per-gene counts (one pass over the
    /// indices), otherwise by the average density.
    static func geneWindows(_ matrix: MatrixReader, genes: Range<Int>, rows: [Int]?, gatherBudget: Int,
                            lanes: Int) throws(AnnDataError) -> [(genes: Range<Int>, counts: ArraySlice<Int>?)] {
        guard !genes.isEmpty else { return [] }
        let perEntry = matrix.gatheredBytesPerEntry
        // Bytes each gene's gathered copy takes.
        let bytes: [Int]
        let counts = try matrix.storedCountsPerColumn(rows: rows, threads: lanes)
        if let counts {
            bytes = counts[genes].map { $0 * perEntry }
        } else {
            let info = matrix.info
            let inPlay = rows.map { Double($0.count) / Double(max(1, info.nRows)) } ?? 1
            let perGene = Double(info.nnz) * inPlay / Double(max(1, info.nCols)) * Double(perEntry)
            bytes = Array(repeating: Int(perGene.rounded(.up)), count: genes.count)
        }
        let total = bytes.reduce(0, +)
        let fits = total <= gatherBudget
        var windows: [(genes: Range<Int>, counts: ArraySlice<Int>?)] = []
        var start = genes.lowerBound, filled = 0, before = 0
        for (k, size) in bytes.enumerated() {
            let gene = genes.lowerBound + k
            // Fitting: `lanes` windows of about equal bytes. Else: windows of a lane's share.
            let full = fits ? windows.count < lanes - 1 && before * lanes >= (windows.count + 1) * total
                            : filled + size > max(1, gatherBudget / lanes)
            if gene > start && full {
                windows.append((start..<gene, counts?[start..<gene]))
                (start, filled) = (gene, 0)
            }
            filled += size
            before += size
        }
        windows.append((start..<genes.upperBound, counts?[start..<genes.upperBound]))
        return windows
    }
}
