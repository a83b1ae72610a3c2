import AnnData
import Foundation
import Stats

/// A did_table result with sctrial's columns, order, sort and FDR (§1.9, §1.10), plus `reason`.
public struct DiDTable: Sendable {
    public var columns: [String]
    public var rows: [DiDRow]
    /// Cell types did_table_by_celltype skipped, with why.
    public var skipped: [(celltype: String, why: String)]

    static let estimates = ["beta_DiD", "se_DiD", "p_DiD", "beta_time", "p_time", "n_units"]
    static let fitted = ["resid_sd", "cov_type_used"]
    static let bootstrap = ["p_DiD_boot", "se_DiD_boot", "ci_lo_boot", "ci_hi_boot"]

    /// The keys sctrial's per-feature dict has, in insertion order: NaN rows (§1.7.2–1.7.3) lack
    /// resid_sd, cov_type_used and the bootstrap keys, which moves `feature` forward.
    static func keys(_ row: DiDRow) -> [String] {
        if row.result.nanReason != nil { return estimates + ["feature"] }
        return estimates + fitted + (row.result.bootstrap != nil ? bootstrap : []) + ["feature"]
    }

    /// Columns in first-appearance order over the rows, as pandas builds a frame from dicts.
    static func union(_ lists: [[String]]) -> [String] {
        var seen = Set<String>()
        var out: [String] = []
        for list in lists { for key in list where seen.insert(key).inserted { out.append(key) } }
        return out
    }

    /// One did_table block: sorted by p_DiD (stably, NaN last) with BH over the non-NaN p-values.
    static func block(_ rows: [DiDRow]) -> (columns: [String], rows: [DiDRow]) {
        let columns = union(rows.map(keys)) + ["FDR_DiD"]
        var sorted = rows.enumerated().sorted { a, b in
            let (p, q) = (a.element.result.pDiD, b.element.result.pDiD)
            if p.isNaN || q.isNaN { return !p.isNaN && q.isNaN || (p.isNaN == q.isNaN && a.offset < b.offset) }
            return p < q || (p == q && a.offset < b.offset)
        }.map(\.element)
        let valid = sorted.indices.filter { !sorted[$0].result.pDiD.isNaN }
        let adjusted = BenjaminiHochberg.statsmodels(valid.map { sorted[$0].result.pDiD })
        for (index, q) in zip(valid, adjusted) { sorted[index].fdr = q }
        return (columns, sorted)
    }

    init(blocks: [(columns: [String], rows: [DiDRow])], byCelltype: Bool, skipped: [(String, String)]) {
        self.skipped = skipped
        if byCelltype {
            var all = blocks.flatMap(\.rows)
            let valid = all.indices.filter { !all[$0].result.pDiD.isNaN }
            let adjusted = BenjaminiHochberg.statsmodels(valid.map { all[$0].result.pDiD })
            for (index, q) in zip(valid, adjusted) { all[index].fdrStratified = q }
            rows = all
            columns = Self.union(blocks.map { $0.columns + ["celltype"] }) + (all.isEmpty ? [] : ["FDR_DiD_stratified"])
        } else {
            rows = blocks.first?.rows ?? []
            columns = blocks.first?.columns ?? []
        }
        columns.append("reason")
    }

    static func reason(_ row: DiDRow) -> String {
        switch row.result.nanReason {
        case .fewerThanFourUnits?: "fewer than 4 participants with data"
        case .nonFiniteStandardDeviation?: "outcome SD is not finite"
        case .zeroVariance?: "constant outcome (SD < 1e-8)"
        case .saturated?: "as many regression rows as design columns (N = K); statsmodels would divide by zero"
        case nil: ""
        }
    }

    func value(_ column: String, _ row: DiDRow) -> String {
        let r = row.result
        switch column {
        case "beta_DiD": return CSVText.number(r.betaDiD)
        case "se_DiD": return CSVText.number(r.seDiD)
        case "p_DiD": return CSVText.number(r.pDiD)
        case "beta_time": return CSVText.number(r.betaTime)
        case "p_time": return CSVText.number(r.pTime)
        case "n_units": return String(r.nUnits)
        case "resid_sd": return r.nanReason == nil ? CSVText.number(r.residSD) : ""
        case "cov_type_used": return r.covType?.rawValue ?? ""
        case "p_DiD_boot": return CSVText.number(r.bootstrap?.pValue ?? .nan)
        case "se_DiD_boot": return CSVText.number(r.bootstrap?.standardError ?? .nan)
        case "ci_lo_boot": return CSVText.number(r.bootstrap?.ciLow ?? .nan)
        case "ci_hi_boot": return CSVText.number(r.bootstrap?.ciHigh ?? .nan)
        case "feature": return CSVText.field(row.feature)
        case "FDR_DiD": return CSVText.number(row.fdr)
        case "celltype": return CSVText.field(row.celltype ?? "")
        case "FDR_DiD_stratified": return CSVText.number(row.fdrStratified)
        case "reason": return CSVText.field(Self.reason(row))
        default: return ""
        }
    }

    /// results.csv: header and one line per row, as pandas' `to_csv(index=False)` writes it.
    public func csv() -> String {
        var text = columns.joined(separator: ",") + "\n"
        for row in rows { text += columns.map { value($0, row) }.joined(separator: ",") + "\n" }
        return text
    }
}

extension DiDAnalysis {
    /// The whole analysis in process: features resolved, every cell-type block fitted, the table
    /// assembled. `extraColumns` are per-cell features computed elsewhere (gene-set scores).
    /// The checks `plan did` makes before writing a plan: everything `run` resolves before it
    /// reads the matrix.
    public static func validate(path: String, parameters: DiDParameters) throws(AnalysisError) {
        _ = try prepare(path: path, parameters: parameters, computing: false, budget: .default)
    }

    public static func run(path: String, parameters: DiDParameters, budget: ReadBudget = .default) throws(AnalysisError) -> DiDTable {
        let (analysis, features) = try prepare(path: path, parameters: parameters, computing: true, budget: budget)
        var blocks: [(columns: [String], rows: [DiDRow])] = []
        var skipped: [(String, String)] = []
        for celltype in analysis.celltypeBlocks() {
            do {
                blocks.append(DiDTable.block(try analysis.fit(features: features, celltype: celltype, budget: budget)))
            } catch {
                // did_table_by_celltype skips a cell type with no usable participant; a plain
                // did_table fails.
                guard parameters.byCelltype, let celltype else { throw AnalysisError("\(path): \(error.message)") }
                skipped.append((celltype, error.message))
            }
        }
        return DiDTable(blocks: blocks, byCelltype: parameters.byCelltype, skipped: skipped)
    }

    /// Resolves columns, visits, arms and features. With `computing`, also the passes features
    /// need before fitting: gene totals for --min-gene-counts, library sizes for log1p-CPM and
    /// gene-set scores (over all cells of the file, §8.6); without, only names are checked.
    static func prepare(path: String, parameters: DiDParameters, computing: Bool,
                        budget: ReadBudget) throws(AnalysisError) -> (DiDAnalysis, [DiDFeature]) {
        let file: AnnDataFile
        do { file = try AnnDataFile(path: path) } catch { throw AnalysisError(error) }
        guard parameters.visits.count == 2, parameters.visits[0] != parameters.visits[1] else {
            throw AnalysisError("--visits needs two different visits, PRE,POST")
        }
        let obs = try TrialObs(file: file, parameters: parameters)
        for visit in parameters.visits where !obs.visit.contains(visit) {
            let known = Set(obs.visit.compactMap { $0 }).sorted().prefix(8).joined(separator: ", ")
            throw AnalysisError("\(path): visit '\(visit)' has no cells in obs column '\(parameters.visitCol)' (visits: \(known))")
        }
        let inVisits = obs.visit.indices.filter { parameters.visits.contains(obs.visit[$0] ?? "") }
        let treated = inVisits.filter { obs.arm[$0] == parameters.treated }.count
        if treated == 0 || treated == inVisits.count {
            throw AnalysisError("\(path): obs column '\(parameters.armCol)' needs treated ('\(parameters.treated)') and control cells at visits \(parameters.visits.joined(separator: ",")); found \(treated == 0 ? "no treated" : "only treated") cells")
        }
        let matrixName = parameters.log1pCPMFrom ?? parameters.layer ?? "X"
        var features: [DiDFeature] = []
        var matrix: MatrixReader?
        var transform: (@Sendable (Int, Double) -> Double)?
        var extraColumns: [DiDFeature] = []
        try AnalysisError.converting(path) {
            let names = try file.vars.index()
            var keptGenes: [Bool]?
            if let minimum = parameters.minGeneCounts {
                let totals = computing ? try geneTotals(file.matrix(matrixName, budget: budget)) : []
                keptGenes = totals.isEmpty ? nil : totals.map { $0 >= minimum }
            }
            if let counts = parameters.log1pCPMFrom {
                let source = try file.matrix(counts, budget: budget)
                if computing {
                    let libraries = try Log1pCPM.librarySizes(matrix: source, file: path, genes: keptGenes)
                    // sctrial divides then scales on dense counts, scales the factor on sparse ones.
                    if source.info.format == .dense {
                        transform = { @Sendable row, x in Log1pCPM.denseValue(x, library: libraries[row]) }
                    } else {
                        transform = { @Sendable row, x in Log1pCPM.value(x, library: libraries[row]) }
                    }
                }
            }
            if let sets = parameters.geneSets {
                let collection = try GeneSetCollection(sets: sets.sets.map { GeneSet(name: $0.name, genes: $0.genes) }, source: sets.source)
                let scores = computing
                    ? try GeneSetScoring.scores(matrix: file.matrix(parameters.layer ?? "X", budget: budget), varNames: names,
                                                sets: collection, method: sets.method, minGenes: sets.minGenes)
                    : collection.sets.map { _ in [Double]() }
                extraColumns = zip(collection.sets, scores).map { .cellValues(name: sets.prefix + $0.name, values: $1) }
            }
            switch parameters.features {
            case .allGenes:
                matrix = try file.matrix(matrixName, budget: budget)
                features = names.enumerated().filter { keptGenes?[$0.offset] ?? true }.map { .gene(index: $0.offset, name: $0.element) }
            case .allSets:
                features = extraColumns
            case .named(let requested):
                var resolved: [DiDFeature] = []
                let geneIndex = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
                for name in requested {
                    if let extra = extraColumns.first(where: { $0.name == name }) {
                        resolved.append(extra)
                    } else if file.obs.columnNames.contains(name) {
                        let column = try file.obs.column(name, expectedCount: file.nObs)
                        guard let numbers = column.numbers() else {
                            throw AnalysisError("\(path): feature '\(name)' is obs column of kind \(column.kind.rawValue), not numeric")
                        }
                        resolved.append(.cellValues(name: name, values: numbers.map { $0 ?? .nan }))
                    } else if let index = geneIndex[name] {
                        if matrix == nil { matrix = try file.matrix(matrixName, budget: budget) }
                        resolved.append(.gene(index: index, name: name))
                    } else {
                        throw AnalysisError("\(path): feature '\(name)' is neither an obs column nor a gene in var")
                    }
                }
                features = resolved
            }
        }
        guard !features.isEmpty else { throw AnalysisError("\(path): no features to test") }
        for column in obs.covariates where column.numbers() == nil {
            if case .categorical = column.values { continue }
            if case .string = column.values { continue }
            if case .nullableString = column.values { continue }
            throw AnalysisError("\(path): covariate '\(column.name)' is of kind \(column.kind.rawValue)")
        }
        return (DiDAnalysis(parameters: parameters, obs: obs, matrix: matrix, transform: transform), features)
    }

    /// Total of each gene over all cells (scanpy's filter_genes(min_counts=) criterion).
    static func geneTotals(_ matrix: MatrixReader) throws(AnnDataError) -> [Double] {
        var totals = [Double](repeating: 0, count: matrix.info.nCols)
        var blocks = try matrix.blocks()
        while let slab = try blocks.next() {
            slab.forEachEntry { _, column, value in if !value.isNaN { totals[column] += value } }
        }
        return totals
    }
}
