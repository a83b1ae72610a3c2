import AnnData
import Foundation
import Stats

/// One tested feature: a gene of the analysed matrix or a numeric per-cell column (an obs column
/// or a gene-set score).
public enum DiDFeature: Sendable, Equatable {
    case gene(index: Int, name: String)
    case cellValues(name: String, values: [Double])

    public var name: String {
        switch self {
        case .gene(_, let name), .cellValues(let name, _): name
        }
    }
}

/// One row of the result, before formatting.
public struct DiDRow: Sendable {
    public var feature: String
    public var celltype: String?
    public var result: DiDFeatureResult
    public var fdr = Double.nan
    public var fdrStratified = Double.nan

    public init(feature: String, celltype: String?, result: DiDFeatureResult) {
        self.feature = feature
        self.celltype = celltype
        self.result = result
    }
}

/// Difference-in-differences with participant fixed effects on pseudobulk, as sctrial 1.0's
/// `did_table` / `did_table_by_celltype` (REFERENCE-SEMANTICS §1, §8), float64 throughout.
public struct DiDAnalysis {
    let parameters: DiDParameters
    let obs: TrialObs
    let matrix: MatrixReader?
    /// Applied to each stored value of the gene matrix (log1p-CPM), given the cell's row.
    let transform: (@Sendable (Int, Double) -> Double)?

    init(parameters: DiDParameters, obs: TrialObs, matrix: MatrixReader?, transform: (@Sendable (Int, Double) -> Double)?) {
        self.parameters = parameters
        self.obs = obs
        self.matrix = matrix
        self.transform = transform
    }

    /// The cell types a run covers: one entry (nil) for a plain did_table.
    func celltypeBlocks() -> [String?] {
        guard parameters.byCelltype else { return [parameters.celltype] }
        if let chosen = parameters.celltypes { return chosen }
        return (obs.celltype?.presentLevels ?? []).sorted().map { Optional($0) }
    }

    /// Fits every feature in each cell-type block (one nil block: all cells), reading the matrix
    /// once for all blocks: their units are disjoint sets of cells, so one pass fills every
    /// block's outcomes. A block without a paired participant (sctrial's ValueError/KeyError,
    /// which did_table_by_celltype skips) gives its error instead of rows.
    func fit(features: [DiDFeature], celltypes: [String?],
             budget: ReadBudget) throws(AnalysisError) -> [(celltype: String?, rows: Result<[DiDRow], AnalysisError>)] {
        var outcome: [(celltype: String?, rows: Result<[DiDRow], AnalysisError>)] = []
        var fitted: [(index: Int, units: DiDUnits, design: DiDDesign)] = []
        for celltype in celltypes {
            do {
                let (units, design) = try design(celltype: celltype)
                fitted.append((outcome.count, units, design))
                outcome.append((celltype, .success([])))
            } catch {
                outcome.append((celltype, .failure(error)))
            }
        }
        guard !fitted.isEmpty else { return outcome }
        let merged = DiDUnits(merging: fitted.map(\.units))
        let options = DiDOptions(standardize: parameters.standardize,
                                 bootstrap: parameters.bootstrap.map { DiDBootstrapOptions(draws: $0.draws, seed: $0.seed) })
        var results = [[DiDFeatureResult?]](repeating: [DiDFeatureResult?](repeating: nil, count: features.count), count: fitted.count)
        var failed = [AnalysisError?](repeating: nil, count: fitted.count)
        // Features in chunks whose outcome matrix (units × chunk) fits the memory budget.
        let chunk = max(1, min(features.count, budget.bytes / 8 / max(1, merged.count)))
        var start = 0
        while start < features.count {
            let range = start..<min(features.count, start + chunk)
            let all = try self.outcomes(Array(features[range]), units: merged, budget: budget)
            var offset = 0
            for (b, block) in fitted.enumerated() {
                let u = block.units.count
                defer { offset += u }
                guard failed[b] == nil else { continue }
                // Block b's rows of the merged units × chunk matrix, column by column.
                var outcomes = [Double](repeating: 0, count: u * range.count)
                for k in 0..<range.count {
                    for unit in 0..<u { outcomes[k * u + unit] = all[k * merged.count + offset + unit] }
                }
                do {
                    let values = try FixedEffectsDiD.fit(block.design, outcomes: outcomes, featureCount: range.count, options: options)
                    for (position, result) in values.enumerated() { results[b][range.lowerBound + position] = result }
                } catch {
                    failed[b] = AnalysisError("fit for cell type \(outcome[block.index].celltype ?? "all"): \(error)")
                }
            }
            start = range.upperBound
        }
        for (b, block) in fitted.enumerated() {
            let celltype = outcome[block.index].celltype
            outcome[block.index].rows = failed[b].map { .failure($0) }
                ?? .success(zip(features, results[b]).map { DiDRow(feature: $0.name, celltype: celltype, result: $1!) })
        }
        return outcome
    }

    /// The pseudobulk units and the regression design of one cell type (or all cells), from obs
    /// alone: planning builds them too, so a design that cannot be fitted fails before any run.
    func design(celltype: String?) throws(AnalysisError) -> (DiDUnits, DiDDesign) {
        let units = try DiDUnits(obs: obs, parameters: parameters, celltype: celltype)
        do {
            let design = try DiDDesign(participant: units.participant, participantLevels: units.participantLevels,
                                       visit: units.visit, arm: units.arm,
                                       weights: parameters.aggregate == .cell ? nil : units.cellCount,
                                       covariates: try covariates(units))
            return (units, design)
        } catch let error as AnalysisError {
            throw error
        } catch {
            throw AnalysisError("design for cell type \(celltype ?? "all"): \(error)")
        }
    }

    /// Covariates per unit: numeric ones aggregated like the features, others by "first" (they
    /// must be constant within a unit, §1.11).
    private func covariates(_ units: DiDUnits) throws(AnalysisError) -> [DiDDesign.Covariate] {
        var result: [DiDDesign.Covariate] = []
        for column in obs.covariates {
            if let numbers = column.numbers() {
                let values = numbers.map { $0 ?? .nan }
                result.append(.numeric(aggregateCells(values, units: units)))
                continue
            }
            let labels = column.labels()
            var first = [String?](repeating: nil, count: units.count)
            var seen = [Bool](repeating: false, count: units.count)
            for cell in labels.indices {
                let unit = Int(units.unitOfCell[cell])
                guard unit >= 0, let label = labels[cell] else { continue }
                if !seen[unit] { first[unit] = label; seen[unit] = true }
                else if first[unit] != label {
                    throw AnalysisError("covariate '\(column.name)' is not numeric and differs within a participant-visit group ('\(first[unit]!)' vs '\(label)')")
                }
            }
            let present = Set(units.cells.compactMap { labels[$0] })
            let levels = present.sorted()
            let code = Dictionary(uniqueKeysWithValues: levels.enumerated().map { ($1, $0) })
            let isCategorical: Bool
            if case .categorical = column.values { isCategorical = true } else { isCategorical = false }
            result.append(.categorical(codes: first.map { $0.flatMap { code[$0] } ?? -1 },
                                       levels: isCategorical ? .categories(max(1, levels.count)) : .observed))
        }
        return result
    }

    /// Per-unit statistic of a per-cell value (cell mode: the value itself).
    private func aggregateCells(_ values: [Double], units: DiDUnits) -> [Double] {
        switch (parameters.aggregate, parameters.statistic) {
        case (.cell, _):
            var out = [Double](repeating: .nan, count: units.count)
            for cell in values.indices where units.unitOfCell[cell] >= 0 { out[Int(units.unitOfCell[cell])] = values[cell] }
            return out
        case (_, .median):
            var buckets = [[Double]](repeating: [], count: units.count)
            for cell in values.indices where units.unitOfCell[cell] >= 0 { buckets[Int(units.unitOfCell[cell])].append(values[cell]) }
            return buckets.indices.map { UnitAggregate.median(&buckets[$0], zeros: 0) }
        case (_, .mean), (_, .pctPos):
            var sums = [Double](repeating: 0, count: units.count)
            var counts = [Double](repeating: 0, count: units.count)
            for cell in values.indices where units.unitOfCell[cell] >= 0 {
                let unit = Int(units.unitOfCell[cell]), value = values[cell]
                if parameters.statistic == .pctPos {
                    sums[unit] += value > 0 ? 1 : 0
                    counts[unit] += 1
                } else if !value.isNaN {
                    sums[unit] += value
                    counts[unit] += 1
                }
            }
            return zip(sums, counts).map { $1 > 0 ? (parameters.statistic == .pctPos ? 100 * $0 / $1 : $0 / $1) : .nan }
        }
    }

    /// The outcome matrix (units × features, column-major) of one chunk of features.
    private func outcomes(_ features: [DiDFeature], units: DiDUnits, budget: ReadBudget) throws(AnalysisError) -> [Double] {
        var outcomes = [Double](repeating: .nan, count: units.count * features.count)
        var genes: [(feature: Int, gene: Int)] = []
        for (k, feature) in features.enumerated() {
            switch feature {
            case .cellValues(_, let values):
                let aggregated = aggregateCells(values, units: units)
                for unit in 0..<units.count { outcomes[k * units.count + unit] = aggregated[unit] }
            case .gene(let index, _):
                genes.append((k, index))
            }
        }
        guard !genes.isEmpty, let matrix else { return outcomes }
        do {
            if parameters.aggregate != .cell && parameters.statistic != .median {
                try streamMeans(genes, matrix: matrix, units: units, into: &outcomes)
            } else {
                try gatherValues(genes, matrix: matrix, units: units, budget: budget, into: &outcomes)
            }
        } catch {
            throw AnalysisError(error)
        }
        return outcomes
    }

    /// One pass over the cells in play accumulating, for every unit and gene, the sum and count
    /// of non-NaN values (mean) or the count of positive values (pct_pos). Implicit zeros add
    /// nothing to a sum; they count through the unit's cell number.
    private func streamMeans(_ genes: [(feature: Int, gene: Int)], matrix: MatrixReader, units: DiDUnits,
                             into outcomes: inout [Double]) throws(AnnDataError) {
        let u = units.count
        let f = outcomes.count / max(1, u)
        var slot = [Int32](repeating: -1, count: matrix.info.nCols)
        for (feature, gene) in genes { slot[gene] = Int32(feature) }
        // Unit-major accumulators: the genes of one cell's row land next to each other, so a row
        // touches a few cache lines instead of one per gene.
        var sums = [Double](repeating: 0, count: u * f)
        var nanCounts: [Double]?
        let pctPos = parameters.statistic == .pctPos
        let transform = self.transform
        func add(_ cell: Int, _ gene: Int, _ raw: Double) {
            let k = slot[gene]
            guard k >= 0 else { return }
            let unit = units.unitOfCell[cell]
            guard unit >= 0 else { return }
            let value = transform.map { $0(cell, raw) } ?? raw
            let index = Int(unit) * f + Int(k)
            if pctPos {
                if value > 0 { sums[index] += 1 }
            } else if value.isNaN {
                if nanCounts == nil { nanCounts = [Double](repeating: 0, count: sums.count) }
                nanCounts![index] += 1
            } else {
                sums[index] += value
            }
        }
        let window = (genes.map(\.gene).min()!)..<(genes.map(\.gene).max()! + 1)
        var blocks = try matrix.blocks(rows: units.cells, columns: window)
        while let slab = try blocks.next() {
            switch slab {
            case .sparse(let s) where s.axis == .rows && transform == nil:
                // The hot loop of a DiD: one row's entries into its unit's accumulators.
                var sawNaN = false
                s.indices.withUnsafeBufferPointer { indices in
                    s.values.withUnsafeBufferPointer { values in
                        slot.withUnsafeBufferPointer { slot in
                            sums.withUnsafeMutableBufferPointer { sums in
                                for (k, cell) in s.majorIDs.enumerated() {
                                    let unit = Int(units.unitOfCell[cell])
                                    guard unit >= 0 else { continue }
                                    let base = unit * f
                                    for position in s.indptr[k]..<s.indptr[k + 1] {
                                        let feature = slot[Int(indices[position])]
                                        guard feature >= 0 else { continue }
                                        let value = values[position]
                                        if pctPos {
                                            if value > 0 { sums[base + Int(feature)] += 1 }
                                        } else if value.isNaN {
                                            sawNaN = true
                                        } else {
                                            sums[base + Int(feature)] += value
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // NaNs were skipped above; count them separately (rare) for the per-unit divisor.
                if sawNaN {
                    for (k, cell) in s.majorIDs.enumerated() {
                        for position in s.indptr[k]..<s.indptr[k + 1] where s.values[position].isNaN {
                            let feature = slot[Int(s.indices[position])]
                            let unit = units.unitOfCell[cell]
                            guard feature >= 0, unit >= 0 else { continue }
                            if nanCounts == nil { nanCounts = [Double](repeating: 0, count: sums.count) }
                            nanCounts![Int(unit) * f + Int(feature)] += 1
                        }
                    }
                }
            case .sparse(let s):
                for (k, major) in s.majorIDs.enumerated() {
                    for position in s.indptr[k]..<s.indptr[k + 1] {
                        if s.axis == .rows { add(major, Int(s.indices[position]), s.values[position]) }
                        else { add(Int(s.indices[position]), major, s.values[position]) }
                    }
                }
            case .dense(let d):
                let width = d.columns.count
                for (k, row) in d.rowIDs.enumerated() {
                    for offset in 0..<width { add(row, d.columns.lowerBound + offset, d.values[k * width + offset]) }
                }
            }
        }
        for (feature, _) in genes {
            for unit in 0..<u {
                let index = unit * f + feature
                let n = units.cellCount[unit] - (nanCounts?[index] ?? 0)
                outcomes[feature * u + unit] = n > 0 ? (pctPos ? 100 * sums[index] / units.cellCount[unit] : sums[index] / n) : .nan
            }
        }
    }

    /// Median and cell-level outcomes need every value of a unit: gather gene blocks column-major
    /// (each block re-reads the cells in play; blocks are as wide as the budget allows).
    private func gatherValues(_ genes: [(feature: Int, gene: Int)], matrix: MatrixReader, units: DiDUnits, budget: ReadBudget,
                              into outcomes: inout [Double]) throws(AnnDataError) {
        let u = units.count
        let cells = units.cells
        let sorted = genes.sorted { $0.gene < $1.gene }
        let density = matrix.info.nRows * matrix.info.nCols > 0 ? Double(matrix.info.nnz) / Double(matrix.info.nRows * matrix.info.nCols) : 1
        let perGene = max(1.0, density * Double(cells.count) * 24)
        let genesPerBlock = max(1, Int(Double(budget.bytes) / perGene))
        var start = 0
        var buckets = [[Double]](repeating: [], count: u)
        while start < sorted.count {
            let block = sorted[start..<min(sorted.count, start + genesPerBlock)]
            let window = block.first!.gene..<(block.last!.gene + 1)
            let slab = try matrix.gatherColumns(rows: cells, columns: window)
            for (feature, gene) in block {
                let k = gene - window.lowerBound
                for unit in 0..<u { buckets[unit].removeAll(keepingCapacity: true) }
                var column = [Double](repeating: 0, count: parameters.aggregate == .cell ? u : 0)
                for position in slab.indptr[k]..<slab.indptr[k + 1] {
                    let cell = Int(slab.indices[position])
                    let unit = Int(units.unitOfCell[cell])
                    guard unit >= 0 else { continue }
                    let value = transform.map { $0(cell, slab.values[position]) } ?? slab.values[position]
                    if parameters.aggregate == .cell { column[unit] = value } else { buckets[unit].append(value) }
                }
                for unit in 0..<u {
                    outcomes[feature * u + unit] = parameters.aggregate == .cell
                        ? column[unit]
                        : UnitAggregate.median(&buckets[unit], zeros: Int(units.cellCount[unit]) - buckets[unit].count)
                }
            }
            start += block.count
        }
    }
}
