import AnnData
import Foundation

/// Plans a DiD run: checks the design, computes gene totals / library sizes once when asked
/// for, chooses features or cell types as the axis from where each cell type's cells lie, and
/// costs each unit.
public struct DiDPlanner: AnalysisPlanner {
    public var parameters: DiDParameters
    public var analysisName: String { PlannedDiD.name }

    public init(parameters: DiDParameters) { self.parameters = parameters }

    public func layout(input path: String, request: ShardingRequest, correction: CostCorrection?,
                       progress: (@Sendable (String) -> Void)?) throws -> AnalysisLayout {
        // Fail on the design before any pass over the matrix.
        let first = try DiDAnalysis.outline(path: path, parameters: parameters, geneTotals: nil)
        if parameters.minGeneCounts != nil || parameters.log1pCPMFrom != nil {
            progress?("computing gene totals / library sizes: one pass over \(first.matrixName)")
        }
        let (totals, libraries) = try DiDAnalysis.prepass(path: path, parameters: parameters)
        let outline = totals == nil ? first : try DiDAnalysis.outline(path: path, parameters: parameters, geneTotals: totals)
        guard !outline.features.isEmpty else {
            throw AnalysisError("\(path): no features to test (--min-gene-counts dropped every gene)")
        }
        let file = try AnnDataFile(path: path)
        let info = try file.matrixInfo(outline.matrixName)
        let csr = info.format == .csr
        // Cell-type shards read row subsets: worth it only when a cell type's cells sit
        // together in the file; interleaved ones would make every shard read it all.
        let celltypeCoverage = outline.rowsPerCelltype.map { CostModel.rowCoverage($0, nRows: info.nRows) }.max() ?? 1
        let axis = request.axis ?? (parameters.byCelltype && csr && outline.celltypes.count > 1
                                    && celltypeCoverage <= CostModel.maximumRowSubsetCoverage ? .celltypes : .features)
        switch axis {
        case .features: break
        case .celltypes where parameters.byCelltype: break
        case .celltypes: throw AnalysisError("--axis celltypes needs --by-celltype")
        default: throw AnalysisError("--axis \(axis.rawValue) is not for DiD; DiD splits by features or celltypes")
        }
        let matrix = try file.matrix(outline.matrixName)
        let readRate = try CostModel.measureReadRate(matrix)
        let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
        let cells = Double(outline.cellsPerCelltype.reduce(0, +))
        let features = Double(outline.features.count)
        let units = Double(max(1, parameters.aggregate == .cell ? Int(cells) : outline.cellsPerCelltype.count * 64))
        let rawCosts: [Double]
        switch axis {
        case .celltypes:
            rawCosts = outline.cellsPerCelltype.map { n in
                Double(n) * features * density / readRate + CostModel.didSecondsPerUnitFeature * units * features
            }
        default:
            let perFeature = cells * density / readRate + CostModel.didSecondsPerUnitFeature * units
            rawCosts = Array(repeating: perFeature, count: outline.features.count)
        }
        let unitCosts = rawCosts.map { $0 * (correction?.ratio ?? 1) }
        let ranges = request.partition(unitCosts, fixedCost: 0)
        let readPath: ReadPath
        if !outline.readsMatrix {
            readPath = parameters.geneSets == nil ? .none : (csr && ranges.count > 1 && axis == .features ? .stagedColumns : .allRows)
        } else if axis == .celltypes {
            readPath = csr ? .rowSubset : .allRows
        } else {
            readPath = !csr ? .columnRange : (ranges.count == 1 ? .allRows : .stagedColumns)
        }
        let memoryGB = request.memoryGB ?? ShardingRequest.defaultMemoryGB
        let memory = ranges.map { range in
            let width = axis == .features ? Double(range.count) : features
            return Int(units * width * 8 * 3 + memoryGB * 1e9 / 8)
        }
        var matrices = [outline.matrixName]
        if parameters.geneSets != nil { matrices.append(parameters.layer ?? "X") }
        let analysis = PlannedDiD(parameters: parameters, features: outline.features, celltypes: outline.celltypes)
        let model = String(format: "read %.1fM stored values/s (measured on this file), fit %.0f ns per unit × feature", readRate / 1e6, CostModel.didSecondsPerUnitFeature * 1e9) + (correction?.text ?? "")
        var blocks = parameters.byCelltype ? ", \(outline.celltypes.count) cell types" : ""
        if parameters.byCelltype && csr {
            blocks += String(format: " (their cells touch up to %.0f%% of the file's row blocks)", celltypeCoverage * 100)
        }
        let description = "DiD on \(path): \(file.nObs) cells × \(file.nVars) genes, \(outline.matrixName) \(info.format.rawValue) \(info.dtype.rawValue), \(info.nnz) stored values; \(outline.features.count) features\(blocks)"
        return AnalysisLayout(analysis: analysis, matrices: matrices, nObs: file.nObs, nVars: file.nVars, axis: axis,
                              readPath: readPath, ranges: ranges, unitCosts: unitCosts, fixedCost: 0,
                              memoryBytes: memory, memoryGB: memoryGB, description: description, model: model) { staging in
            if readPath == .stagedColumns { try staging.stageGeneMajorCopy(of: matrix) }
            if let totals { try staging.stageGeneTotals(totals) }
            if let libraries { try staging.stageLibrarySizes(libraries) }
        }
    }
}
