import AnnData
import Foundation

// MARK: - Gene sets (GMT)

/// One gene set as written in its file: genes in file order, duplicates kept (scoring drops them).
public struct GeneSet: Sendable, Equatable {
    public let name: String
    public let description: String
    public let genes: [String]

    public init(name: String, description: String = "", genes: [String]) {
        self.name = name
        self.description = description
        self.genes = genes
    }
}

/// Named gene sets in file order, names unique: what `score_gene_sets` receives as its dict.
public struct GeneSetCollection: Sendable, Equatable {
    /// Where the sets came from (path or URL), for messages.
    public let source: String
    public let sets: [GeneSet]

    public var names: [String] { sets.map(\.name) }

    /// Checks what a GMT file would: at least one set, non-empty unique names, every set with genes.
    public init(sets: [GeneSet], source: String = "gene sets") throws(AnalysisError) {
        guard !sets.isEmpty else { throw AnalysisError("\(source): no gene sets") }
        var seen = Set<String>()
        for set in sets {
            guard !set.name.isEmpty else { throw AnalysisError("\(source): a gene set has an empty name") }
            guard !set.genes.isEmpty else { throw AnalysisError("\(source): gene set '\(set.name)' has no genes") }
            guard seen.insert(set.name).inserted else {
                throw AnalysisError("\(source): duplicate gene set name '\(set.name)'")
            }
        }
        self.source = source
        self.sets = sets
    }

    /// Parses GMT text: one set per line, `name<TAB>description<TAB>gene1<TAB>gene2...`. Blank lines
    /// and lines starting with `#` are skipped; fields are trimmed of surrounding white space and
    /// empty fields (trailing tabs) ignored; `\r\n` line ends and a UTF-8 byte-order mark are fine.
    /// A set without genes, an empty name or a repeated name is an error naming `source` and the line.
    public init(gmt text: String, source: String) throws(AnalysisError) {
        var sets: [GeneSet] = []
        var firstLine: [String: Int] = [:]
        var lineNumber = 0
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        for rawLine in body.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == "\r" { line = line.dropLast() }
            if line.allSatisfy(\.isWhitespace) || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let name = fields[0]
            guard !name.isEmpty else {
                throw AnalysisError("\(source) line \(lineNumber): empty gene set name")
            }
            let genes = fields.dropFirst(2).filter { !$0.isEmpty }
            guard !genes.isEmpty else {
                let hint = fields.count == 1 && line.contains(" ") ? " (GMT fields are separated by tabs)" : ""
                throw AnalysisError("\(source) line \(lineNumber): gene set '\(name)' has no genes\(hint)")
            }
            if let first = firstLine[name] {
                throw AnalysisError("\(source) line \(lineNumber): duplicate gene set name '\(name)' (first on line \(first))")
            }
            firstLine[name] = lineNumber
            sets.append(GeneSet(name: name, description: fields.count > 1 ? fields[1] : "", genes: Array(genes)))
        }
        guard !sets.isEmpty else {
            throw AnalysisError("\(source): no gene sets (GMT lines are name<TAB>description<TAB>gene...)")
        }
        self.source = source
        self.sets = sets
    }

    /// Reads a GMT file from a path or an http(s) URL (redirects followed, `timeoutSeconds` overall).
    public static func load(_ location: String, timeoutSeconds: Int = 30) throws(AnalysisError) -> GeneSetCollection {
        if HTTPFetch.isURL(location) {
            return try GeneSetCollection(gmt: HTTPFetch.getText(location, timeoutSeconds: timeoutSeconds), source: location)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: location, isDirectory: &isDirectory) else {
            throw AnalysisError("\(location): no such gene-set file")
        }
        guard !isDirectory.boolValue else { throw AnalysisError("\(location): is a directory, not a gene-set file") }
        guard let data = FileManager.default.contents(atPath: location) else {
            throw AnalysisError("\(location): cannot read the gene-set file (permissions?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw AnalysisError("\(location): gene-set file is not UTF-8 text")
        }
        return try GeneSetCollection(gmt: text, source: location)
    }
}

// MARK: - Scoring

/// sctrial 1.0.0 `score_gene_sets` (REFERENCE-SEMANTICS §2.2) over all cells of a matrix, float64
/// arithmetic (§8.1), in the reference's summation orders (numpy: sequential down a cell column of
/// a multi-gene submatrix, pairwise across a cell's genes), so float64 input agrees to the last bits.
public enum GeneSetScoring {
    public enum Method: String, Sendable, CaseIterable {
        /// Per gene z-score over all cells (nanmean, nanstd ddof 1), averaged over the genes with σ > 1e-12.
        case zmean
        /// Mean expression over the set's genes.
        case mean
    }

    /// Genes with a standard deviation at or below this are left out of `zmean`.
    public static let minimumSD = 1e-12

    /// One score array (n_obs values, NaN where undefined) per set, in set order. Streams the matrix
    /// once (CSC: only the needed columns), holding the non-zeros of the union of set genes.
    public static func scores(matrix: MatrixReader, varNames: [String], sets: GeneSetCollection,
                              method: Method, minGenes: Int = 3) throws(AnalysisError) -> [[Double]] {
        guard varNames.count == matrix.info.nCols else {
            throw AnalysisError("\(sets.source): \(varNames.count) gene names for matrix \(matrix.info.name) with \(matrix.info.nCols) columns")
        }
        let plan = try GeneSetPlan(varNames: varNames, sets: sets, minGenes: minGenes)
        let data: GatheredColumns
        do {
            data = try GatheredColumns.gather(matrix: matrix, columns: plan.columns)
        } catch {
            throw AnalysisError(error)
        }
        return scores(plan: plan, data: data, method: method)
    }

    /// Opens `element` (`X`, `raw/X`, a layer) of the h5ad at `path` and scores every set over all
    /// its cells; gene names are the var index (raw/var's for `raw/X`).
    public static func scores(path: String, element: String = "X", sets: GeneSetCollection, method: Method,
                              minGenes: Int = 3, budget: ReadBudget = .default) throws(AnalysisError) -> [[Double]] {
        let matrix: MatrixReader
        let varNames: [String]
        do {
            let file = try AnnDataFile(path: path)
            matrix = try file.matrix(element, budget: budget)
            if matrix.info.name == "raw/X", let raw = try file.rawVars() {
                varNames = try raw.index()
            } else {
                varNames = try file.vars.index()
            }
        } catch {
            throw AnalysisError(error)
        }
        return try scores(matrix: matrix, varNames: varNames, sets: sets, method: method, minGenes: minGenes)
    }

    /// The numerics on gathered columns (pure).
    public static func scores(plan: GeneSetPlan, data: GatheredColumns, method: Method) -> [[Double]] {
        precondition(data.columns == plan.columns, "gathered columns must be the plan's columns")
        let n = data.nRows
        var slotOf: [Int: Int] = [:]
        for (slot, column) in data.columns.enumerated() { slotOf[column] = slot }
        // Per gene statistics for zmean, computed once per (gene, summation order).
        var sequentialStats: [Int: (mean: Double, sd: Double)] = [:]
        var column = [Double](repeating: 0, count: n)
        func statistics(_ slot: Int, pairwise: Bool) -> (mean: Double, sd: Double) {
            if !pairwise, let known = sequentialStats[slot] { return known }
            data.dense(slot, into: &column)
            let result = columnStatistics(column, pairwise: pairwise)
            if !pairwise { sequentialStats[slot] = result }
            return result
        }

        return plan.genes.map { genes -> [Double] in
            guard let genes else { return [Double](repeating: .nan, count: n) }
            let slots = genes.map { slotOf[$0]! }
            switch method {
            case .mean:
                return data.rowMeans(slots: slots) { _, x in x }
            case .zmean:
                // numpy reduces a one-column submatrix pairwise, wider ones sequentially down each column.
                let stats = slots.map { statistics($0, pairwise: slots.count == 1) }
                let valid = slots.indices.filter { stats[$0].sd > minimumSD }
                guard !valid.isEmpty else { return [Double](repeating: .nan, count: n) }
                let means = valid.map { stats[$0].mean }
                let sds = valid.map { stats[$0].sd }
                return data.rowMeans(slots: valid.map { slots[$0] }) { j, x in (x - means[j]) / sds[j] }
            }
        }
    }

    /// numpy `nanmean` and `nanstd(ddof=1)` of one cell column (non-finite values already NaN):
    /// the sum of the finite values, divided by their count; then the sum of squared deviations,
    /// divided by count − 1 (NaN below two values). `pairwise`: numpy's pairwise summation (a
    /// one-column submatrix); otherwise sequential in row order (numpy down a wider one).
    public static func columnStatistics(_ column: [Double], pairwise: Bool) -> (mean: Double, sd: Double) {
        var count = 0
        var zeroed = column
        for k in zeroed.indices {
            if zeroed[k].isNaN { zeroed[k] = 0 } else { count += 1 }
        }
        let sum = pairwise ? numpySum(zeroed) : sequentialSum(zeroed)
        let mean = sum / Double(count)
        for k in zeroed.indices {
            let d = column[k].isNaN ? 0 : column[k] - mean
            zeroed[k] = d * d
        }
        let squares = pairwise ? numpySum(zeroed) : sequentialSum(zeroed)
        let dof = count - 1
        let variance = dof > 0 ? squares / Double(dof) : .nan
        return (mean, variance.squareRoot())
    }

    /// numpy's pairwise summation (`add.reduce` along a contiguous axis): blocks of up to 128
    /// values with eight accumulators, halved recursively above.
    public static func numpySum(_ values: [Double]) -> Double {
        values.withUnsafeBufferPointer { numpySum($0) }
    }

    public static func numpySum(_ values: UnsafeBufferPointer<Double>) -> Double {
        let n = values.count
        if n < 8 {
            var result = -0.0
            for value in values { result += value }
            return result
        }
        if n <= 128 {
            var r0 = values[0], r1 = values[1], r2 = values[2], r3 = values[3]
            var r4 = values[4], r5 = values[5], r6 = values[6], r7 = values[7]
            var i = 8
            while i < n - n % 8 {
                r0 += values[i]; r1 += values[i + 1]; r2 += values[i + 2]; r3 += values[i + 3]
                r4 += values[i + 4]; r5 += values[i + 5]; r6 += values[i + 6]; r7 += values[i + 7]
                i += 8
            }
            var result = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            while i < n { result += values[i]; i += 1 }
            return result
        }
        var half = n / 2
        half -= half % 8
        return numpySum(UnsafeBufferPointer(rebasing: values[0..<half]))
            + numpySum(UnsafeBufferPointer(rebasing: values[half..<n]))
    }

    static func sequentialSum(_ values: [Double]) -> Double {
        var result = 0.0
        for value in values { result += value }
        return result
    }
}

/// Which genes each set scores: sctrial's `use` (set genes present in the var names, first
/// occurrence kept, gene order kept), or nil when fewer than `minGenes` are present.
public struct GeneSetPlan: Sendable, Equatable {
    /// Per set, in set order: the var indices scored, or nil (all-NaN scores).
    public let genes: [[Int]?]
    /// Union of the scored var indices, ascending: the only columns read.
    public let columns: [Int]

    public init(varNames: [String], sets: GeneSetCollection, minGenes: Int) throws(AnalysisError) {
        guard minGenes >= 1 else { throw AnalysisError("\(sets.source): min genes must be ≥ 1, got \(minGenes)") }
        // As sctrial's `{g: i for i, g in enumerate(var_names)}`: a repeated var name maps to its last column.
        var index: [String: Int] = [:]
        for (position, name) in varNames.enumerated() { index[name] = position }
        var union = Set<Int>()
        genes = sets.sets.map { set -> [Int]? in
            var seen = Set<String>()
            var use: [Int] = []
            for gene in set.genes {
                guard let column = index[gene], seen.insert(gene).inserted else { continue }
                use.append(column)
            }
            guard use.count >= minGenes else { return nil }
            union.formUnion(use)
            return use
        }
        columns = union.sorted()
    }
}

/// Selected columns of a matrix, column-major with implicit zeros: per slot (one per column of
/// `columns`), rows ascending and distinct, stored values (zeros dropped, non-finite kept).
public struct GatheredColumns: Sendable, Equatable {
    public let nRows: Int
    /// The var index of each slot, ascending.
    public let columns: [Int]
    /// `indptr[s]..<indptr[s+1]` are the entries of slot `s`.
    public let indptr: [Int]
    public let rows: [Int32]
    public let values: [Double]

    /// From dense cell columns (`dense[s][row]`), for tests and small in-memory inputs.
    public init(nRows: Int, columns: [Int], dense: [[Double]]) {
        precondition(dense.count == columns.count && dense.allSatisfy { $0.count == nRows })
        var indptr = [0], rows: [Int32] = [], values: [Double] = []
        for column in dense {
            for (row, value) in column.enumerated() where value != 0 {
                rows.append(Int32(row))
                values.append(value)
            }
            indptr.append(values.count)
        }
        self.init(nRows: nRows, columns: columns, indptr: indptr, rows: rows, values: values)
    }

    init(nRows: Int, columns: [Int], indptr: [Int], rows: [Int32], values: [Double]) {
        self.nRows = nRows
        self.columns = columns
        self.indptr = indptr
        self.rows = rows
        self.values = values
    }

    /// Reads `columns` (ascending, distinct) of all cells in one pass: CSR and dense stream the
    /// window spanning them, CSC reads each run of consecutive columns. Memory: the selection's
    /// non-zeros (12 bytes each) plus one block of the reader's budget.
    public static func gather(matrix: MatrixReader, columns: [Int]) throws(AnnDataError) -> GatheredColumns {
        let nRows = matrix.info.nRows
        guard let low = columns.first, let high = columns.last else {
            return GatheredColumns(nRows: nRows, columns: [], indptr: [0], rows: [], values: [])
        }
        var slotOf = [Int](repeating: -1, count: high - low + 1)
        for (slot, column) in columns.enumerated() { slotOf[column - low] = slot }
        var slotRows = [[Int32]](repeating: [], count: columns.count)
        var slotValues = [[Double]](repeating: [], count: columns.count)

        func take(_ slab: Slab) {
            switch slab {
            case .sparse(let s) where s.axis == .columns:
                for (k, column) in s.majorIDs.enumerated() where column >= low && column <= high {
                    let slot = slotOf[column - low]
                    guard slot >= 0 else { continue }
                    for position in s.indptr[k]..<s.indptr[k + 1] where s.values[position] != 0 {
                        slotRows[slot].append(s.indices[position])
                        slotValues[slot].append(s.values[position])
                    }
                }
            case .sparse(let s):
                for (k, row) in s.majorIDs.enumerated() {
                    for position in s.indptr[k]..<s.indptr[k + 1] {
                        let column = Int(s.indices[position])
                        guard column >= low, column <= high, s.values[position] != 0 else { continue }
                        let slot = slotOf[column - low]
                        guard slot >= 0 else { continue }
                        slotRows[slot].append(Int32(row))
                        slotValues[slot].append(s.values[position])
                    }
                }
            case .dense(let d):
                let width = d.columns.count
                for (k, row) in d.rowIDs.enumerated() {
                    for (offset, column) in d.columns.enumerated() {
                        let value = d.values[k * width + offset]
                        guard value != 0, column >= low, column <= high else { continue }
                        let slot = slotOf[column - low]
                        guard slot >= 0 else { continue }
                        slotRows[slot].append(Int32(row))
                        slotValues[slot].append(value)
                    }
                }
            }
        }

        if matrix.info.format == .csc {
            var start = 0
            while start < columns.count {
                var end = start + 1
                while end < columns.count, columns[end] == columns[end - 1] + 1 { end += 1 }
                var blocks = try matrix.blocks(columns: columns[start]..<(columns[end - 1] + 1))
                while let slab = try blocks.next() { take(slab) }
                start = end
            }
        } else {
            var blocks = try matrix.blocks(columns: low..<(high + 1))
            while let slab = try blocks.next() { take(slab) }
        }

        var indptr = [0], rows: [Int32] = [], values: [Double] = []
        rows.reserveCapacity(slotValues.reduce(0) { $0 + $1.count })
        values.reserveCapacity(rows.capacity)
        for slot in columns.indices {
            let (r, v) = canonical(slotRows[slot], slotValues[slot])
            rows += r
            values += v
            indptr.append(values.count)
            slotRows[slot] = []
            slotValues[slot] = []
        }
        return GatheredColumns(nRows: nRows, columns: columns, indptr: indptr, rows: rows, values: values)
    }

    /// Rows ascending and distinct: unsorted CSC columns are sorted, duplicate entries summed (as
    /// scipy's densification does).
    static func canonical(_ rows: [Int32], _ values: [Double]) -> ([Int32], [Double]) {
        if zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }) { return (rows, values) }
        let order = rows.indices.sorted { rows[$0] < rows[$1] || (rows[$0] == rows[$1] && $0 < $1) }
        var outRows: [Int32] = [], outValues: [Double] = []
        for k in order {
            if let last = outRows.last, last == rows[k] {
                outValues[outValues.count - 1] += values[k]
            } else {
                outRows.append(rows[k])
                outValues.append(values[k])
            }
        }
        return (outRows, outValues)
    }

    /// Slot `slot` as a dense cell column, non-finite values as NaN.
    func dense(_ slot: Int, into column: inout [Double]) {
        for k in column.indices { column[k] = 0 }
        for position in indptr[slot]..<indptr[slot + 1] {
            let value = values[position]
            column[Int(rows[position])] = value.isFinite ? value : .nan
        }
    }

    /// Per cell, numpy's `nanmean` across the slots of `f(j, x)` (x: the cell's value in slot j,
    /// implicit zeros as 0, non-finite as NaN): NaN terms dropped from the count and summed as 0,
    /// pairwise across the genes; NaN for a cell with no finite term.
    func rowMeans(slots: [Int], _ f: (Int, Double) -> Double) -> [Double] {
        var cursor = slots.map { indptr[$0] }
        let ends = slots.map { indptr[$0 + 1] }
        var terms = [Double](repeating: 0, count: slots.count)
        var result = [Double](repeating: .nan, count: nRows)
        for row in 0..<nRows {
            var count = 0
            let row32 = Int32(row)
            for j in slots.indices {
                var x = 0.0
                if cursor[j] < ends[j], rows[cursor[j]] == row32 {
                    x = values[cursor[j]]
                    if !x.isFinite { x = .nan }
                    cursor[j] += 1
                }
                let term = f(j, x)
                if term.isNaN {
                    terms[j] = 0
                } else {
                    terms[j] = term
                    count += 1
                }
            }
            result[row] = GeneSetScoring.numpySum(terms) / Double(count)
        }
        return result
    }
}
