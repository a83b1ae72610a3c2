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
        // "\r\n" is one Character in Swift: both line ends separate lines.
        for line in body.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if line.allSatisfy(\.isWhitespace) || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
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
/// arithmetic (§8.1), in the reference's summation orders, so float64 input agrees to the last bits.
///
/// numpy sums along the contiguous axis pairwise and across the other one sequentially, and the
/// layouts differ by storage: a dense matrix's `X[:, genes]` is Fortran-ordered (per-gene μ and σ
/// summed pairwise over the cells; `mean` across a cell's genes sequential), a sparse one's
/// `.toarray()` C-ordered (μ and σ sequential over the cells unless the set has one gene; `mean`
/// across genes pairwise); the z matrix `sub[:, valid]` is Fortran-ordered for both (zmean across
/// genes sequential).
public enum GeneSetScoring {
    public enum Method: String, Sendable, Codable, CaseIterable {
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
        return scores(plan: plan, data: data, method: method, denseInput: matrix.info.format == .dense)
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

    /// The numerics on gathered columns (pure). `denseInput`: the columns come from dense storage
    /// (it selects numpy's summation orders, see above; the values are the same either way).
    public static func scores(plan: GeneSetPlan, data: GatheredColumns, method: Method, denseInput: Bool) -> [[Double]] {
        precondition(data.columns == plan.columns, "gathered columns must be the plan's columns")
        let n = data.nRows
        var slotOf: [Int: Int] = [:]
        for (slot, column) in data.columns.enumerated() { slotOf[column] = slot }
        // Per gene statistics for zmean, computed once per (gene, summation order).
        var known: [Int: (mean: Double, sd: Double)] = [:]
        var column = [Double](repeating: 0, count: n)
        func statistics(_ slot: Int, pairwise: Bool) -> (mean: Double, sd: Double) {
            let key = pairwise ? -1 - slot : slot
            if let result = known[key] { return result }
            let result: (mean: Double, sd: Double)
            if pairwise {
                data.dense(slot, into: &column)
                result = columnStatistics(column, pairwise: true)
            } else {
                result = data.sequentialStatistics(slot)
            }
            known[key] = result
            return result
        }

        return plan.genes.map { genes -> [Double] in
            guard let genes else { return [Double](repeating: .nan, count: n) }
            let slots = genes.map { slotOf[$0]! }
            switch method {
            case .mean:
                return data.rowMeans(slots: slots, pairwise: !denseInput)
            case .zmean:
                // A one-column submatrix is contiguous down the cells whatever its order.
                let stats = slots.map { statistics($0, pairwise: denseInput || slots.count == 1) }
                let valid = slots.indices.filter { stats[$0].sd > minimumSD }
                guard !valid.isEmpty else { return [Double](repeating: .nan, count: n) }
                let means = valid.map { stats[$0].mean }
                let sds = valid.map { stats[$0].sd }
                return data.rowMeans(slots: valid.map { slots[$0] }, pairwise: false, centers: means, scales: sds)
            }
        }
    }

    /// numpy `nanmean` and `nanstd(ddof=1)` of one cell column (non-finite values already NaN):
    /// the sum of the finite values, divided by their count; then the sum of squared deviations,
    /// divided by count − 1 (NaN below two values). `pairwise`: numpy's pairwise summation (cells
    /// contiguous); otherwise sequential in row order.
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

    /// Reads `columns` (ascending, distinct) of all cells in one pass: CSR streams every row (it
    /// must), dense the window spanning the columns, CSC each run of consecutive columns. Memory:
    /// the selection's non-zeros (12 bytes each, 28 while sorting) plus one block of the budget.
    public static func gather(matrix: MatrixReader, columns: [Int]) throws(AnnDataError) -> GatheredColumns {
        let nRows = matrix.info.nRows
        guard let low = columns.first, let high = columns.last else {
            return GatheredColumns(nRows: nRows, columns: [], indptr: [0], rows: [], values: [])
        }
        var slotOf = [Int32](repeating: -1, count: high - low + 1)
        for (slot, column) in columns.enumerated() { slotOf[column - low] = Int32(slot) }
        // (slot, row, value) triples in storage order, sorted by slot at the end.
        var triples = Triples(low: low, slotOf: slotOf)

        switch matrix.info.format {
        case .csc:
            var start = 0
            while start < columns.count {
                var end = start + 1
                while end < columns.count, columns[end] == columns[end - 1] + 1 { end += 1 }
                var blocks = try matrix.blocks(columns: columns[start]..<(columns[end - 1] + 1))
                while let slab = try blocks.next() { triples.take(slab) }
                start = end
            }
        case .csr:
            // Every row is read whole anyway; without a window the reader hands its arrays over.
            var blocks = try matrix.blocks()
            while let slab = try blocks.next() { triples.take(slab) }
        case .dense:
            var blocks = try matrix.blocks(columns: low..<(high + 1))
            while let slab = try blocks.next() { triples.take(slab) }
        }
        return bySlot(nRows: nRows, columns: columns, slots: triples.slots, rows: triples.rows, values: triples.values)
    }

    /// The stored non-zeros of the selected columns, as they stream by (a struct with mutating
    /// methods: no closure-captured arrays, whose every access would be checked at run time).
    private struct Triples {
        let low: Int
        let slotOf: [Int32]
        var slots: [Int32] = []
        var rows: [Int32] = []
        var values: [Double] = []

        mutating func append(_ slot: Int32, _ row: Int32, _ value: Double) {
            slots.append(slot)
            rows.append(row)
            values.append(value)
        }

        mutating func take(_ slab: Slab) {
            let high = low + slotOf.count
            switch slab {
            case .sparse(let s) where s.axis == .columns:
                for (k, column) in s.majorIDs.enumerated() where column >= low && column < high {
                    let slot = slotOf[column - low]
                    guard slot >= 0 else { continue }
                    for position in s.indptr[k]..<s.indptr[k + 1] where s.values[position] != 0 {
                        append(slot, s.indices[position], s.values[position])
                    }
                }
            case .sparse(let s):
                // The hot loop of a CSR pass (every stored entry of the matrix goes by).
                let lookup = slotOf
                lookup.withUnsafeBufferPointer { lookup in
                    s.indices.withUnsafeBufferPointer { indices in
                        s.values.withUnsafeBufferPointer { stored in
                            for (k, row) in s.majorIDs.enumerated() {
                                for position in s.indptr[k]..<s.indptr[k + 1] {
                                    let column = Int(indices[position]) &- low
                                    guard column >= 0, column < lookup.count else { continue }
                                    let slot = lookup[column]
                                    let value = stored[position]
                                    if slot >= 0 && value != 0 { append(slot, Int32(row), value) }
                                }
                            }
                        }
                    }
                }
            case .dense(let d):
                let width = d.columns.count
                for (k, row) in d.rowIDs.enumerated() {
                    for (offset, column) in d.columns.enumerated() where column >= low && column < high {
                        let value = d.values[k * width + offset]
                        let slot = slotOf[column - low]
                        if slot >= 0 && value != 0 { append(slot, Int32(row), value) }
                    }
                }
            }
        }
    }

    /// Counting sort of the triples by slot (stable: storage order kept within a slot), then each
    /// slot made canonical.
    static func bySlot(nRows: Int, columns: [Int], slots: [Int32], rows: [Int32], values: [Double]) -> GatheredColumns {
        var indptr = [Int](repeating: 0, count: columns.count + 1)
        for slot in slots { indptr[Int(slot) + 1] += 1 }
        for k in 0..<columns.count { indptr[k + 1] += indptr[k] }
        var next = indptr
        var sortedRows = [Int32](repeating: 0, count: values.count)
        var sortedValues = [Double](repeating: 0, count: values.count)
        for position in values.indices {
            let slot = Int(slots[position])
            sortedRows[next[slot]] = rows[position]
            sortedValues[next[slot]] = values[position]
            next[slot] += 1
        }
        // Unsorted CSC columns or duplicate entries: rare, so fixed slot by slot.
        let canonicalAlready = columns.indices.allSatisfy { slot in
            indptr[slot + 1] - indptr[slot] < 2
                || (indptr[slot] + 1..<indptr[slot + 1]).allSatisfy { sortedRows[$0 - 1] < sortedRows[$0] }
        }
        if canonicalAlready {
            return GatheredColumns(nRows: nRows, columns: columns, indptr: indptr, rows: sortedRows, values: sortedValues)
        }
        var outIndptr = [0], outRows: [Int32] = [], outValues: [Double] = []
        for slot in columns.indices {
            let range = indptr[slot]..<indptr[slot + 1]
            let (r, v) = canonical(Array(sortedRows[range]), Array(sortedValues[range]))
            outRows += r
            outValues += v
            outIndptr.append(outValues.count)
        }
        return GatheredColumns(nRows: nRows, columns: columns, indptr: outIndptr, rows: outRows, values: outValues)
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

    /// `columnStatistics(dense(slot), pairwise: false)` without densifying: a sequential sum is
    /// unchanged by its zero terms, and each implicit zero's squared deviation is μ², added in turn.
    func sequentialStatistics(_ slot: Int) -> (mean: Double, sd: Double) {
        let range = indptr[slot]..<indptr[slot + 1]
        var sum = 0.0
        var nonFinite = 0
        for position in range {
            if values[position].isFinite { sum += values[position] } else { nonFinite += 1 }
        }
        let count = nRows - nonFinite
        let mean = sum / Double(count)
        let zeroSquare = (0 - mean) * (0 - mean)
        var squares = 0.0
        var row = 0
        for position in range {
            let stored = Int(rows[position])
            while row < stored { squares += zeroSquare; row += 1 }
            let value = values[position]
            if value.isFinite {
                let d = value - mean
                squares += d * d
            }
            row = stored + 1
        }
        while row < nRows { squares += zeroSquare; row += 1 }
        let dof = count - 1
        let variance = dof > 0 ? squares / Double(dof) : .nan
        return (mean, variance.squareRoot())
    }

    /// Per cell, numpy's `nanmean` across the slots of the terms x (mean) or (x − centers[j]) /
    /// scales[j] (zmean), x the cell's value (implicit zeros 0, non-finite NaN): NaN terms left out
    /// of the count and summed as 0, across the genes pairwise or sequentially; NaN for a cell with
    /// no finite term.
    func rowMeans(slots: [Int], pairwise: Bool, centers: [Double]? = nil, scales: [Double]? = nil) -> [Double] {
        @inline(__always) func term(_ j: Int, _ x: Double) -> Double {
            guard x.isFinite else { return .nan }
            guard let centers, let scales else { return x }
            return (x - centers[j]) / scales[j]
        }
        var result = [Double](repeating: .nan, count: nRows)
        if !pairwise {
            // Gene after gene over all cells: each cell's sum still runs over its genes in order.
            var sums = [Double](repeating: 0, count: nRows)
            var counts = [Int32](repeating: 0, count: nRows)
            for (j, slot) in slots.enumerated() {
                let zero = term(j, 0)
                var row = 0
                func fill(upTo end: Int) {
                    while row < end { sums[row] += zero; counts[row] += 1; row += 1 }
                }
                for position in indptr[slot]..<indptr[slot + 1] {
                    let stored = Int(rows[position])
                    fill(upTo: stored)
                    let t = term(j, values[position])
                    if !t.isNaN { sums[stored] += t; counts[stored] += 1 }
                    row = stored + 1
                }
                fill(upTo: nRows)
            }
            for row in 0..<nRows { result[row] = sums[row] / Double(counts[row]) }
            return result
        }
        // Pairwise across genes: a block of cells × genes at a time.
        let k = slots.count
        let blockRows = max(1, min(nRows, (1 << 18) / max(k, 1)))
        var block = [Double](repeating: 0, count: blockRows * k)
        var counts = [Int32](repeating: 0, count: blockRows)
        var cursor = slots.map { indptr[$0] }
        var start = 0
        while start < nRows {
            let end = min(nRows, start + blockRows)
            for r in 0..<(end - start) { counts[r] = Int32(k) }
            for (j, slot) in slots.enumerated() {
                // The implicit-zero term is finite (0, or −μ/σ with σ > 1e-12); stored ones may not be.
                let zero = term(j, 0)
                for r in 0..<(end - start) { block[r * k + j] = zero }
                let stop = indptr[slot + 1]
                while cursor[j] < stop, Int(rows[cursor[j]]) < end {
                    let r = Int(rows[cursor[j]]) - start
                    let t = term(j, values[cursor[j]])
                    if t.isNaN {
                        block[r * k + j] = 0
                        counts[r] -= 1
                    } else {
                        block[r * k + j] = t
                    }
                    cursor[j] += 1
                }
            }
            block.withUnsafeBufferPointer { buffer in
                for r in 0..<(end - start) {
                    let sum = GeneSetScoring.numpySum(UnsafeBufferPointer(rebasing: buffer[(r * k)..<(r * k + k)]))
                    result[start + r] = sum / Double(counts[r])
                }
            }
            start = end
        }
        return result
    }
}
