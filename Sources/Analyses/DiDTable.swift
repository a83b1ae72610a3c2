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
        case nil: Self.degenerateNote(row.result)
        }
    }

    /// A fitted row's p-value is NaN only when its coefficient's standard error is zero up to
    /// roundoff (FixedEffectsDiD): say which, since the rest of the row is valid.
    static func degenerateNote(_ r: DiDFeatureResult) -> String {
        var notes: [String] = []
        if r.pDiD.isNaN, r.betaDiD.isFinite {
            notes.append("p_DiD NaN: se_DiD is 0 up to roundoff (below 1e-10 of the outcome's scale): beta_DiD is fitted exactly and has no p-value")
        }
        if r.pTime.isNaN, r.betaTime.isFinite {
            notes.append("p_time NaN: the standard error of beta_time is 0 up to roundoff (below 1e-10 of the outcome's scale): beta_time is fitted exactly and has no p-value")
        }
        return notes.joined(separator: "; ")
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

/// What one shard of a DiD run computes, and what planning computed once for every shard.
public struct DiDSelection: Sendable {
    /// A contiguous range of the run's feature list (nil: all).
    public var features: Range<Int>?
    /// A contiguous range of the run's cell-type blocks (nil: all).
    public var celltypes: Range<Int>?
    /// Per-gene totals of the counts source (for --min-gene-counts), from planning.
    public var geneTotals: [Double]?
    /// Per-cell library sizes (for log1p-CPM), from planning.
    public var librarySizes: [Double]?
    /// A gene-major copy of the gene matrix to read genes from instead of the input.
    public var stagedMatrix: String?

    public init(features: Range<Int>? = nil, celltypes: Range<Int>? = nil, geneTotals: [Double]? = nil,
                librarySizes: [Double]? = nil, stagedMatrix: String? = nil) {
        self.features = features
        self.celltypes = celltypes
        self.geneTotals = geneTotals
        self.librarySizes = librarySizes
        self.stagedMatrix = stagedMatrix
    }
}

/// The units a DiD run can be split along, for planning: nothing here reads the matrix.
public struct DiDOutline: Sendable {
    /// Feature names in the order results are assembled.
    public var features: [String]
    /// The cell-type blocks (one nil entry for a plain did_table).
    public var celltypes: [String?]
    /// Rows (cells) of each cell-type block at the two visits, ascending: the cost of fitting it
    /// and what a shard of that block reads.
    public var rowsPerCelltype: [[Int]]
    public var cellsPerCelltype: [Int] { rowsPerCelltype.map(\.count) }
    /// Whether any feature is a gene of the matrix (so a shard reads it).
    public var readsMatrix: Bool
    /// The matrix gene features are read from (the counts layer for log1p-CPM).
    public var matrixName: String
}

/// The rows one shard computed: cell-type blocks in order, features in order, unsorted, no FDR.
public struct DiDShardResult: Sendable {
    public var rows: [DiDRow]
    /// Cell types did_table_by_celltype skipped, with why.
    public var skipped: [(celltype: String, why: String)]

    public init(rows: [DiDRow], skipped: [(celltype: String, why: String)]) {
        self.rows = rows
        self.skipped = skipped
    }
}

extension DiDTable {
    /// The table from every shard's rows in global unit order: rows are grouped by cell type in
    /// `celltypes` order, each block sorted and adjusted as did_table does, then the stratified FDR.
    public init(rows: [DiDRow], celltypes: [String?], byCelltype: Bool, skipped: [(String, String)]) {
        var byKey: [String?: [DiDRow]] = [:]
        for row in rows { byKey[row.celltype, default: []].append(row) }
        let blocks = celltypes.compactMap { byKey[$0] }.map { Self.block($0) }
        self.init(blocks: blocks, byCelltype: byCelltype, skipped: skipped)
    }
}

extension DiDAnalysis {
    /// The checks `plan did` makes before writing a plan: everything a run resolves before it
    /// reads the matrix.
    public static func validate(path: String, parameters: DiDParameters) throws(AnalysisError) {
        _ = try outline(path: path, parameters: parameters, geneTotals: nil)
    }

    /// The whole analysis in process: the passes planning makes, then every unit as one shard.
    public static func run(path: String, parameters: DiDParameters, budget: ReadBudget = .default) throws(AnalysisError) -> DiDTable {
        let (totals, libraries) = try prepass(path: path, parameters: parameters, budget: budget)
        let selection = DiDSelection(geneTotals: totals, librarySizes: libraries)
        let outline = try outline(path: path, parameters: parameters, geneTotals: totals)
        let result = try shard(path: path, parameters: parameters, selection: selection, budget: budget)
        return DiDTable(rows: result.rows, celltypes: outline.celltypes, byCelltype: parameters.byCelltype,
                        skipped: result.skipped.map { ($0.celltype, $0.why) })
    }

    /// The passes over the whole matrix that every shard would otherwise repeat: gene totals for
    /// --min-gene-counts and library sizes for log1p-CPM (over the kept genes).
    public static func prepass(path: String, parameters: DiDParameters,
                               budget: ReadBudget = .default) throws(AnalysisError) -> (geneTotals: [Double]?, librarySizes: [Double]?) {
        guard parameters.minGeneCounts != nil || parameters.log1pCPMFrom != nil else { return (nil, nil) }
        return try AnalysisError.converting(path) {
            let file = try AnnDataFile(path: path)
            let matrixName = parameters.log1pCPMFrom ?? parameters.layer ?? "X"
            let totals = parameters.minGeneCounts == nil ? nil : try geneTotals(file.matrix(matrixName, budget: budget))
            var libraries: [Double]?
            if let counts = parameters.log1pCPMFrom {
                let kept = parameters.minGeneCounts.flatMap { minimum in totals?.map { $0 >= minimum } }
                libraries = try Log1pCPM.librarySizes(matrix: file.matrix(counts, budget: budget), file: path, genes: kept)
            }
            return (totals, libraries)
        }
    }

    /// Features, cell-type blocks and their sizes, resolved from metadata (and the gene totals).
    public static func outline(path: String, parameters: DiDParameters, geneTotals: [Double]?) throws(AnalysisError) -> DiDOutline {
        let resolved = try resolve(path: path, parameters: parameters, geneTotals: geneTotals)
        let analysis = DiDAnalysis(parameters: parameters, obs: resolved.obs, matrix: nil, transform: nil)
        let blocks = analysis.celltypeBlocks()
        // A plain did_table fails on a design without paired participants (by-celltype skips the
        // cell type at run time, as did_table_by_celltype does).
        if !parameters.byCelltype {
            do { _ = try analysis.design(celltype: parameters.celltype) } catch { throw AnalysisError("\(path): \(error.message)") }
        }
        let rows = blocks.map { resolved.obs.cells(atVisits: parameters.visits, celltype: $0) }
        let readsMatrix = resolved.specs.contains { if case .gene = $0 { true } else { false } }
        return DiDOutline(features: resolved.specs.map(\.name), celltypes: blocks, rowsPerCelltype: rows,
                          readsMatrix: readsMatrix, matrixName: parameters.log1pCPMFrom ?? parameters.layer ?? "X")
    }

    /// One shard: its features (gene-set scores computed for its sets only) fitted in its cell
    /// types. A cell type without a paired participant is skipped by did_table_by_celltype and
    /// fails a plain did_table.
    public static func shard(path: String, parameters: DiDParameters, selection: DiDSelection,
                             budget: ReadBudget = .default) throws(AnalysisError) -> DiDShardResult {
        let resolved = try resolve(path: path, parameters: parameters, geneTotals: selection.geneTotals)
        let specs = selection.features.map { Array(resolved.specs[$0]) } ?? resolved.specs
        let (analysis, features) = try materialize(specs, resolved: resolved, path: path, parameters: parameters,
                                                   selection: selection, budget: budget)
        var blocks = analysis.celltypeBlocks()
        if let range = selection.celltypes { blocks = Array(blocks[range]) }
        var rows: [DiDRow] = []
        var skipped: [(celltype: String, why: String)] = []
        for (celltype, result) in try analysis.fit(features: features, celltypes: blocks, budget: budget) {
            switch result {
            case .success(let fitted): rows += fitted
            case .failure(let error):
                guard parameters.byCelltype, let celltype else { throw AnalysisError("\(path): \(error.message)") }
                skipped.append((celltype, error.message))
            }
        }
        return DiDShardResult(rows: rows, skipped: skipped)
    }

    /// A feature before its values are read.
    enum FeatureSpec {
        case gene(index: Int, name: String)
        case obsColumn(name: String)
        /// Index into the plan's gene sets; `name` carries the prefix.
        case geneSet(index: Int, name: String)

        var name: String {
            switch self {
            case .gene(_, let name), .obsColumn(let name), .geneSet(_, let name): name
            }
        }
    }

    struct Resolved {
        let file: AnnDataFile
        let obs: TrialObs
        let varNames: [String]
        let specs: [FeatureSpec]
        let keptGenes: [Bool]?
    }

    /// Resolves columns, visits, arms and the feature list from metadata; nothing is computed.
    static func resolve(path: String, parameters: DiDParameters, geneTotals: [Double]?) throws(AnalysisError) -> Resolved {
        let file: AnnDataFile
        do { file = try AnnDataFile(path: path) } catch { throw AnalysisError(error) }
        guard parameters.visits.count == 2, parameters.visits[0] != parameters.visits[1] else {
            throw AnalysisError("--visits needs two different visits, PRE,POST")
        }
        let obs = try TrialObs(file: file, parameters: parameters)
        let visits = obs.visit.presentLevels
        for visit in parameters.visits where !visits.contains(visit) {
            let known = visits.sorted().prefix(8).joined(separator: ", ")
            throw AnalysisError("\(path): visit '\(visit)' has no cells in obs column '\(parameters.visitCol)' (visits: \(known))")
        }
        let (inVisits, treated) = obs.armCounts(atVisits: parameters.visits, treated: parameters.treated)
        if treated == 0 || treated == inVisits {
            throw AnalysisError("\(path): obs column '\(parameters.armCol)' needs treated ('\(parameters.treated)') and control cells at visits \(parameters.visits.joined(separator: ",")); found \(treated == 0 ? "no treated" : "only treated") cells")
        }
        let matrixName = parameters.log1pCPMFrom ?? parameters.layer ?? "X"
        let keptGenes = parameters.minGeneCounts.flatMap { minimum in geneTotals?.map { $0 >= minimum } }
        let sets = (parameters.geneSets?.sets ?? []).enumerated().map {
            FeatureSpec.geneSet(index: $0.offset, name: (parameters.geneSets?.prefix ?? "") + $0.element.name)
        }
        let (names, specs) = try AnalysisError.converting(path) { () throws -> ([String], [FeatureSpec]) in
            let names = try file.vars.index()
            if parameters.log1pCPMFrom != nil || parameters.layer != nil { _ = try file.matrixInfo(matrixName) }
            switch parameters.features {
            case .allGenes:
                _ = try file.matrixInfo(matrixName)
                return (names, names.enumerated().filter { keptGenes?[$0.offset] ?? true }.map { .gene(index: $0.offset, name: $0.element) })
            case .allSets:
                return (names, sets)
            case .named(let requested):
                var resolved: [FeatureSpec] = []
                let geneIndex = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
                for name in requested {
                    if let set = sets.first(where: { $0.name == name }) {
                        resolved.append(set)
                    } else if file.obs.columnNames.contains(name) {
                        let column = try file.obs.column(name, expectedCount: file.nObs)
                        guard column.numbers() != nil else {
                            throw AnalysisError("\(path): feature '\(name)' is obs column of kind \(column.kind.rawValue), not numeric")
                        }
                        resolved.append(.obsColumn(name: name))
                    } else if let index = geneIndex[name] {
                        _ = try file.matrixInfo(matrixName)
                        resolved.append(.gene(index: index, name: name))
                    } else {
                        throw AnalysisError("\(path): feature '\(name)' is neither an obs column nor a gene in var")
                    }
                }
                return (names, resolved)
            }
        }
        guard !specs.isEmpty else { throw AnalysisError("\(path): no features to test") }
        for column in obs.covariates where column.numbers() == nil {
            if case .categorical = column.values { continue }
            if case .string = column.values { continue }
            if case .nullableString = column.values { continue }
            throw AnalysisError("\(path): covariate '\(column.name)' is of kind \(column.kind.rawValue)")
        }
        return Resolved(file: file, obs: obs, varNames: names, specs: specs, keptGenes: keptGenes)
    }

    /// Reads the values of `specs`: obs columns, gene-set scores over all cells (only the sets
    /// asked for), and the matrix (or its staged gene-major copy) that gene features come from.
    static func materialize(_ specs: [FeatureSpec], resolved: Resolved, path: String, parameters: DiDParameters,
                            selection: DiDSelection, budget: ReadBudget) throws(AnalysisError) -> (DiDAnalysis, [DiDFeature]) {
        let file = resolved.file
        let matrixName = parameters.log1pCPMFrom ?? parameters.layer ?? "X"
        let setsLayer = parameters.layer ?? "X"
        return try AnalysisError.converting(path) { () throws -> (DiDAnalysis, [DiDFeature]) in
            let staged = try selection.stagedMatrix.map { staged throws(AnnDataError) in
                try GeneMajorCopy.open(staged, expectedRows: file.nObs, expectedCols: file.nVars, budget: budget)
            }
            var transform: (@Sendable (Int, Double) -> Double)?
            if let counts = parameters.log1pCPMFrom, specs.contains(where: { if case .gene = $0 { true } else { false } }) {
                let source = try file.matrix(counts, budget: budget)
                let libraries = try selection.librarySizes
                    ?? Log1pCPM.librarySizes(matrix: source, file: path, genes: resolved.keptGenes)
                guard libraries.count == file.nObs else {
                    throw AnalysisError("\(path): \(libraries.count) library sizes planned for \(file.nObs) cells; plan the run again")
                }
                // sctrial divides then scales on dense counts, scales the factor on sparse ones.
                if source.info.format == .dense {
                    transform = { @Sendable row, x in Log1pCPM.denseValue(x, library: libraries[row]) }
                } else {
                    transform = { @Sendable row, x in Log1pCPM.value(x, library: libraries[row]) }
                }
            }
            var scores: [Int: [Double]] = [:]
            let wanted = specs.compactMap { if case .geneSet(let index, _) = $0 { index } else { nil } }
            if let sets = parameters.geneSets, !wanted.isEmpty {
                let chosen = wanted.map { sets.sets[$0] }
                let collection = try GeneSetCollection(sets: chosen.map { GeneSet(name: $0.name, genes: $0.genes) }, source: sets.source)
                let matrix = setsLayer == matrixName ? try staged ?? file.matrix(setsLayer, budget: budget) : try file.matrix(setsLayer, budget: budget)
                let computed = try GeneSetScoring.scores(matrix: matrix, varNames: resolved.varNames, sets: collection,
                                                         method: sets.method, minGenes: sets.minGenes)
                for (index, values) in zip(wanted, computed) { scores[index] = values }
            }
            var features: [DiDFeature] = []
            var needsMatrix = false
            for spec in specs {
                switch spec {
                case .gene(let index, let name):
                    needsMatrix = true
                    features.append(.gene(index: index, name: name))
                case .obsColumn(let name):
                    let numbers = try file.obs.column(name, expectedCount: file.nObs).numbers() ?? []
                    features.append(.cellValues(name: name, values: numbers.map { $0 ?? .nan }))
                case .geneSet(let index, let name):
                    features.append(.cellValues(name: name, values: scores[index] ?? []))
                }
            }
            let matrix = needsMatrix ? try staged ?? file.matrix(matrixName, budget: budget) : nil
            return (DiDAnalysis(parameters: parameters, obs: resolved.obs, matrix: matrix, transform: transform), features)
        }
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
