import AnnData
import Dispatch
import Foundation
import Stats

/// One output row, pdex's columns (FDR is added over the whole table at the end).
public struct DERow: Sendable, Equatable {
    public var target: String
    public var reference: String
    public var feature: String
    public var targetMean: Double
    public var referenceMean: Double
    public var percentChange: Double
    public var foldChange: Double
    public var pValue: Double
    public var statistic: Double
}

/// Who is compared with whom, resolved once from the obs column (pdex 0.1.28 standard path).
public struct DEDesign: Sendable, Equatable {
    /// Target labels in order of first appearance (pdex `unique()`), the reference excluded.
    public let targets: [String]
    /// Rows of each target, ascending (empty for the missing-label target).
    public let targetRows: [[Int]]
    /// Rows of the reference group; nil in one-vs-rest mode.
    public let referenceRows: [Int]?
    /// The label written in the `reference` column.
    public let referenceName: String
    public let cellCount: Int

    /// pdex's `unique()` keeps a missing label as a target of its own whose mask matches no cell;
    /// its rows (NaN means, p 1) count in the FDR, so they are kept for parity.
    public static let missingLabel = "nan"

    public init(labels: [String?], parameters: DEParameters, file: String) throws(AnalysisError) {
        var order: [String] = []
        var rowsByLabel: [String: [Int]] = [:]
        var sawMissing = false
        for (row, label) in labels.enumerated() {
            guard let label else {
                if !sawMissing { order.append(Self.missingLabel); sawMissing = true }
                continue
            }
            if rowsByLabel[label] == nil {
                // A real label spelt "nan" would collide with the missing-label target.
                if label == Self.missingLabel && sawMissing { continue }
                order.append(label)
                rowsByLabel[label] = []
            }
            rowsByLabel[label]!.append(row)
        }
        cellCount = labels.count
        let keep: (String) -> Bool = { label in parameters.groups.map { $0.contains(label) } ?? true }
        switch parameters.reference {
        case .label(let reference):
            guard let rows = rowsByLabel[reference] else {
                let known = order.prefix(8).joined(separator: ", ")
                throw AnalysisError("\(file): obs column '\(parameters.groupbyKey)' has no cells labelled '\(reference)' (the reference); labels: \(known)\(order.count > 8 ? ", …" : "")")
            }
            referenceRows = rows
            referenceName = reference
            targets = order.filter { $0 != reference && keep($0) }
        case .rest:
            referenceRows = nil
            referenceName = "rest"
            targets = order.filter { $0 != Self.missingLabel && keep($0) }
        }
        targetRows = targets.map { rowsByLabel[$0] ?? [] }
    }

    /// The rows comparisons of `targets` read, ascending (nil: every row, for one-vs-rest).
    public func rowsInPlay(targets: [Int]) -> [Int]? {
        guard let referenceRows else { return nil }
        return Array(Set(referenceRows).union(targets.lazy.flatMap { self.targetRows[$0] })).sorted()
    }
}

/// Perturbation-vs-control differential expression with pdex 0.1.28's semantics (standard path,
/// REFERENCE-SEMANTICS §3), arithmetic in float64 (§8.1), plus one-vs-rest.
public struct DifferentialExpression: Sendable {
    public let parameters: DEParameters
    public let design: DEDesign
    public let isLog1p: Bool
    public let geneNames: [String]

    public init(parameters: DEParameters, design: DEDesign, isLog1p: Bool, geneNames: [String]) {
        self.parameters = parameters
        self.design = design
        self.isLog1p = isLog1p
        self.geneNames = geneNames
    }

    /// What one pass over the matrix says about it: pdex's `guess_is_log` (log1p iff any stored
    /// value has a fractional part above 1e-3; negative fractions do not count), the minimum and
    /// the non-finite count.
    public struct DataProfile: Sendable {
        public var looksLog1p = false
        public var minimum = 0.0
        public var nonFinite = 0
    }

    public static func profile(_ matrix: MatrixReader) throws(AnnDataError) -> DataProfile {
        var profile = DataProfile()
        var blocks = try matrix.blocks()
        while let slab = try blocks.next() {
            let values: [Double]
            switch slab {
            case .sparse(let s): values = s.values
            case .dense(let d): values = d.values
            }
            for value in values {
                guard value.isFinite else { profile.nonFinite += 1; continue }
                profile.minimum = Swift.min(profile.minimum, value)
                if value - value.rounded(.towardZero) > 1e-3 { profile.looksLog1p = true }
            }
        }
        return profile
    }

    /// Rows for `targets` (indices into `design.targets`) × `genes` (a gene window), in pdex's
    /// order: target-major, genes in var order. `slab` holds the window gathered column-major
    /// over at least the rows in play. Genes run on `threads` threads.
    public func rows(targets: [Int], slab: SparseSlab, threads: Int) -> [DERow] {
        let genes = slab.majorIDs
        let groupOfRow: [Int32] = {
            var groups = [Int32](repeating: -1, count: design.cellCount)
            for (k, target) in targets.enumerated() {
                for row in design.targetRows[target] { groups[row] = Int32(k) }
            }
            if let referenceRows = design.referenceRows {
                for row in referenceRows { groups[row] = Int32(targets.count) }
            }
            return groups
        }()
        let perGene = targets.count
        var results = [DERow](repeating: DERow(target: "", reference: "", feature: "", targetMean: .nan, referenceMean: .nan,
                                               percentChange: .nan, foldChange: .nan, pValue: .nan, statistic: .nan),
                              count: perGene * genes.count)
        // `threads` workers, each taking every threads-th gene: costs per gene vary (sparsity), so
        // interleaving balances them without a shared queue.
        let workers = max(1, min(threads, genes.count))
        results.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let output = buffer
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var worker = GeneWorker(engine: self, targets: targets, groupOfRow: groupOfRow)
                for g in stride(from: w, to: genes.count, by: workers) {
                    let range = slab.indptr[g]..<slab.indptr[g + 1]
                    let rows = worker.compare(gene: genes[g], rows: slab.indices[range], values: slab.values[range])
                    for (k, row) in rows.enumerated() { output[k * genes.count + g] = row }
                }
            }
        }
        return results
    }
}

/// Per-thread scratch for one gene at a time.
private struct GeneWorker {
    let engine: DifferentialExpression
    let targets: [Int]
    let groupOfRow: [Int32]
    /// Group boundaries in `flat` (targets, then the reference).
    var offsets: [Int]
    var flat: [Double] = []
    var exactNull = MannWhitneyExactNull()
    let foldChange: FoldChange

    init(engine: DifferentialExpression, targets: [Int], groupOfRow: [Int32]) {
        self.engine = engine
        self.targets = targets
        self.groupOfRow = groupOfRow
        offsets = [Int](repeating: 0, count: targets.count + 2)
        // The clip value was validated when the plan was made.
        foldChange = (try? FoldChange(clip: engine.parameters.clipValue)) ?? (try! FoldChange(clip: nil))
    }

    mutating func compare(gene: Int, rows: ArraySlice<Int32>, values: ArraySlice<Double>) -> [DERow] {
        // Counting sort of the gene's entries by group into one flat buffer (no per-group arrays
        // to grow); group k's values are flat[offsets[k]..<offsets[k + 1]].
        for k in offsets.indices { offsets[k] = 0 }
        for row in rows {
            let group = groupOfRow[Int(row)]
            if group >= 0 { offsets[Int(group) + 1] += 1 }
        }
        for k in 1..<offsets.count { offsets[k] += offsets[k - 1] }
        flat.removeAll(keepingCapacity: true)
        flat.append(contentsOf: repeatElement(0, count: offsets[offsets.count - 1]))
        var next = Array(offsets.dropLast())
        for (row, value) in zip(rows, values) {
            let group = Int(groupOfRow[Int(row)])
            guard group >= 0 else { continue }
            flat[next[group]] = value
            next[group] += 1
        }
        func bucket(_ k: Int) -> [Double] { Array(flat[offsets[k]..<offsets[k + 1]]) }
        let design = engine.design
        let feature = engine.geneNames[gene]
        if let referenceRows = design.referenceRows {
            let reference = Group(values: bucket(targets.count), size: referenceRows.count)
            let sortedReference = engine.parameters.metric == .tTest ? nil : reference.sorted()
            // The reference is the same for every target: its mean is computed once per gene.
            let referenceMean = reference.mean(log1p: engine.isLog1p, expAfterMean: engine.parameters.expPostAggregation)
            return targets.indices.map { k in
                let target = Group(values: bucket(k), size: design.targetRows[targets[k]].count)
                return row(target: target, reference: reference, sortedReference: sortedReference, referenceMean: referenceMean,
                           name: design.targets[targets[k]], feature: feature)
            }
        }
        // One-vs-rest: the rest is every cell outside the target.
        let allValues = Array(values)
        return targets.indices.map { k in
            let size = design.targetRows[targets[k]].count
            let rest = Group(values: restValues(all: allValues, rows: rows, target: k), size: design.cellCount - size)
            return row(target: Group(values: bucket(k), size: size), reference: rest, sortedReference: nil,
                       name: design.targets[targets[k]], feature: feature)
        }
    }

    private func restValues(all: [Double], rows: ArraySlice<Int32>, target: Int) -> [Double] {
        var rest: [Double] = []
        rest.reserveCapacity(all.count)
        for (row, value) in zip(rows, all) where groupOfRow[Int(row)] != Int32(target) { rest.append(value) }
        return rest
    }

    private mutating func row(target: Group, reference: Group, sortedReference: SortedSample?, referenceMean known: Double? = nil,
                              name: String, feature: String) -> DERow {
        let parameters = engine.parameters
        let targetMean = target.mean(log1p: engine.isLog1p, expAfterMean: parameters.expPostAggregation)
        let referenceMean = known ?? reference.mean(log1p: engine.isLog1p, expAfterMean: parameters.expPostAggregation)
        var statistic = Double.nan
        var p = Double.nan
        switch parameters.metric {
        case .wilcoxon:
            let result = MannWhitney.test(target.sorted(), sortedReference ?? reference.sorted(),
                                          useContinuity: parameters.continuityCorrection, exactNull: &exactNull)
            (statistic, p) = (result.statistic, result.pValue)
        case .anderson:
            // scipy raises ValueError (all values equal) → pdex reports (p 1, NaN); N = 2, where pdex
            // itself crashes, is reported the same way.
            if let result = try? AndersonDarling.test(target.sorted(), sortedReference ?? reference.sorted()) {
                (statistic, p) = (result.statistic, result.pValue)
            }
        case .tTest:
            let result = StudentT.pooledTest(target.moments(), reference.moments())
            (statistic, p) = (result.statistic, result.pValue)
        }
        return DERow(target: name, reference: engine.design.referenceName, feature: feature,
                     targetMean: targetMean, referenceMean: referenceMean,
                     percentChange: FoldChange.percentChange(target: targetMean, reference: referenceMean),
                     foldChange: foldChange.foldChange(target: targetMean, reference: referenceMean),
                     pValue: p.isNaN ? 1 : p, statistic: statistic)
    }
}

/// A group's explicit (non-zero) values of one gene and its size; the rest are zeros.
private struct Group {
    let values: [Double]
    let size: Int

    var zeroCount: Int { size - values.count }

    func sorted() -> SortedSample {
        // Sizes come from the design, so the zero count is never negative.
        try! SortedSample(values, zeroCount: zeroCount)
    }

    func moments() -> SampleMoments {
        SampleMoments(values).merged(with: SampleMoments(count: zeroCount, mean: 0, m2: 0))
    }

    /// pdex `_sample_mean`: mean, expm1 of the mean, or mean of expm1 (expm1(0) = 0, so zeros
    /// stay zeros). Empty group → NaN.
    func mean(log1p: Bool, expAfterMean: Bool) -> Double {
        guard size > 0 else { return .nan }
        if log1p && !expAfterMean {
            return values.reduce(0) { $0 + Foundation.expm1($1) } / Double(size)
        }
        let mean = values.reduce(0, +) / Double(size)
        return log1p ? Foundation.expm1(mean) : mean
    }
}
