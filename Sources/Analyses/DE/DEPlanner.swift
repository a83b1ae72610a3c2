import AnnData
import Foundation

/// Plans a DE run: checks the design, profiles the matrix (log1p, negative and non-finite
/// values), chooses the axis from the storage and where the reference cells lie, and costs
/// each unit.
public struct DEPlanner: AnalysisPlanner {
    public var parameters: DEParameters
    /// Refuse a matrix with negative values instead of warning that its fold and percent
    /// changes are not meaningful (`plan de --strict`).
    public var strict: Bool
    public var analysisName: String { PlannedDE.name }

    public init(parameters: DEParameters, strict: Bool = false) {
        self.parameters = parameters
        self.strict = strict
    }

    /// Memory per DE worker when none is asked for: enough to gather the largest shard's cells ×
    /// genes in one pass (a window per thread) rather than re-reading the matrix once per gene
    /// window, at least the 2 GB default and at most half of this machine's memory (or 16 GB).
    /// `needed`: the gathered copy counted twice (the gather budget is half the memory) plus the
    /// output rows.
    public static func automaticMemoryGB(_ needed: Double) -> Double {
        let ceiling = min(16, Double(ProcessInfo.processInfo.physicalMemory) / 2 / 1e9)
        let wanted = ((needed + 256e6) / 1e9 * 10).rounded(.up) / 10
        return max(ShardingRequest.defaultMemoryGB, min(ceiling, wanted))
    }

    public func layout(input path: String, request: ShardingRequest, correction: CostCorrection?,
                       progress: (@Sendable (String) -> Void)?) throws -> AnalysisLayout {
        let file = try AnnDataFile(path: path)
        let labels = try file.obs.column(parameters.groupbyKey, expectedCount: file.nObs).labels()
        let design = try DEDesign(labels: labels, parameters: parameters, file: path)
        if let groups = parameters.groups {
            let absent = groups.filter { !design.targets.contains($0) && $0 != design.referenceName }
            if absent.count == groups.count {
                throw AnalysisError("\(path): none of --groups (\(groups.joined(separator: ", "))) is a label of obs column '\(parameters.groupbyKey)'")
            }
        }
        guard !design.targets.isEmpty else {
            throw AnalysisError("\(path): obs column '\(parameters.groupbyKey)' has no target besides the reference")
        }
        let matrixName = parameters.layer ?? "X"
        let matrix = try file.matrix(matrixName)
        progress?("checking \(matrix.info.path): one pass over \(matrix.info.nnz) stored values")
        let profile = try DifferentialExpression.profile(matrix)
        // The profile reads values only; shards read indices too: measure as they read.
        let readRate = try CostModel.measureReadRate(matrix)
        let isLog1p: Bool
        switch parameters.isLog1p {
        case .yes: isLog1p = true
        case .no: isLog1p = false
        case .auto: isLog1p = profile.looksLog1p
        }
        if profile.nonFinite > 0 {
            throw AnalysisError("\(path): \(matrix.info.path) has \(profile.nonFinite) non-finite values (NaN or inf)")
        }
        // Scaled (z-scored) data, as sc.pp.scale leaves X: rank and t tests are valid and pdex
        // computes everything, so do we; only the fold and percent change (ratios of means, or
        // of expm1 of means) lose their meaning, which is said rather than refused.
        var warnings: [String] = []
        let negativeMinimum: Double? = profile.minimum < 0 ? profile.minimum : nil
        if let minimum = negativeMinimum {
            let what = "\(path): \(matrix.info.path) has negative values (minimum \(minimum)), e.g. scaled (z-scored) data"
            if strict {
                throw AnalysisError("\(what); --strict refuses it: give counts or normalised data (--layer)")
            }
            warnings.append("\(what): the tests are computed as pdex does, but fold_change and percent_change are not meaningful for negative data (use counts or normalised data, e.g. --layer, for them; --strict refuses such data)")
        }
        let info = matrix.info
        let csr = info.format == .csr
        // Perturbation shards read their targets' and the reference's rows; a reference spread
        // over the whole file makes each of them read it all, so genes are split instead.
        let referenceCoverage = design.referenceRows.map { CostModel.rowCoverage($0, nRows: matrix.info.nRows) } ?? 1
        let axis = request.axis ?? (csr && referenceCoverage <= CostModel.maximumRowSubsetCoverage ? .perturbations : .features)
        guard axis == .perturbations || axis == .features else {
            throw AnalysisError("--axis \(axis.rawValue) is not for DE; DE splits by perturbations or features")
        }
        let genes = try file.vars.index()
        let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
        let referenceCells = design.referenceRows?.count ?? 0
        // Costs in seconds. Reading: stored values at the rate measured above. Testing: a
        // fixed cost per target × gene (p-value, fold change, the row) plus the stored values
        // compared (the target's, and the reference's, which is sorted once per gene).
        let threads = Double(max(1, request.threads))
        let perTest = CostModel.deSecondsPerTest / threads
        let perValue = CostModel.deSecondsPerComparedValue * density / threads
        let genesCount = Double(info.nCols)
        let rest = design.referenceRows == nil
        let rawCosts: [Double]
        let rawFixed: Double
        switch axis {
        case .perturbations:
            rawCosts = design.targetRows.map { rows in
                let compared = Double(rest ? info.nRows : rows.count)
                return (Double(rows.count) * density / readRate + perTest + compared * perValue) * genesCount
            }
            rawFixed = rest
                ? Double(info.nnz) / readRate
                : Double(referenceCells) * genesCount * (density / readRate + perValue)
        default:
            let compared = Double(rest ? info.nRows * design.targets.count : info.nRows)
            rawCosts = Array(repeating: Double(info.nRows) * density / readRate + Double(design.targets.count) * perTest
                             + compared * perValue, count: genes.count)
            rawFixed = 0
        }
        let unitCosts = rawCosts.map { $0 * (correction?.ratio ?? 1) }
        let fixedCost = rawFixed * (correction?.ratio ?? 1)
        let ranges = request.partition(unitCosts, fixedCost: fixedCost)
        let readPath: ReadPath
        switch axis {
        case .perturbations: readPath = design.referenceRows == nil || !csr || ranges.count == 1 ? .allRows : .rowSubset
        default: readPath = !csr ? .columnRange : (ranges.count == 1 ? .allRows : .stagedColumns)
        }
        // A shard's gathered copy of its cells × genes, and its output rows.
        let gathered = { (range: Range<Int>) -> Double in
            let cells = axis == .perturbations
                ? design.targetRows[range].reduce(referenceCells) { $0 + $1.count } : info.nRows
            let geneCount = axis == .perturbations ? info.nCols : range.count
            return Double(cells) * Double(geneCount) * density * Double(matrix.gatheredBytesPerEntry)
        }
        let outputs = { (range: Range<Int>) -> Double in
            Double(axis == .perturbations ? range.count : design.targets.count)
                * Double(axis == .perturbations ? info.nCols : range.count) * Double(MemoryLayout<DEValues>.stride)
        }
        let memoryGB = request.memoryGB ?? Self.automaticMemoryGB(ranges.map { 2 * gathered($0) + outputs($0) }.max() ?? 0)
        let memory = ranges.map { range in
            Int(min(gathered(range), memoryGB * 1e9 / 2) + outputs(range) + memoryGB * 1e9 / 8)
        }
        let analysis = PlannedDE(parameters: parameters, isLog1p: isLog1p, targets: design.targets,
                                 referenceName: design.referenceName, genes: genes, negativeMinimum: negativeMinimum)
        let model = String(format: "read %.1fM stored values/s (measured on this file), %.1f µs per test + %.0f ns per compared stored value", readRate / 1e6, CostModel.deSecondsPerTest * 1e6, CostModel.deSecondsPerComparedValue * 1e9) + (correction?.text ?? "")
        let spread = design.referenceRows == nil || !csr ? "" : String(format: " (reference cells touch %.0f%% of the file's row blocks)", referenceCoverage * 100)
        let description = "DE (\(parameters.metric.rawValue), reference \(design.referenceName)) on \(path): \(file.nObs) cells × \(file.nVars) genes, \(matrixName) \(info.format.rawValue) \(info.dtype.rawValue), \(info.nnz) stored values; \(design.targets.count) targets\(spread); log1p \(isLog1p)"
        var layout = AnalysisLayout(analysis: analysis, matrices: [matrixName], nObs: file.nObs, nVars: file.nVars, axis: axis,
                                    readPath: readPath, ranges: ranges, unitCosts: unitCosts, fixedCost: fixedCost,
                                    memoryBytes: memory, memoryGB: memoryGB, description: description, model: model) { staging in
            if readPath == .stagedColumns { try staging.stageGeneMajorCopy(of: matrix) }
        }
        layout.warnings = warnings
        return layout
    }
}
