import AnnData
import Dispatch
import Foundation
import Stats

/// One output row: its names and pdex's numbers, read through as `row.pValue` etc. (FDR is
/// added over the whole table at the end).
@dynamicMemberLookup
public struct DERow: Sendable, Equatable {
    public var target: String
    public var reference: String
    public var feature: String
    public var values: DEValues

    public subscript<T>(dynamicMember keyPath: KeyPath<DEValues, T>) -> T { values[keyPath: keyPath] }
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

        /// Eight values a step, branch-free: NaN compares false everywhere (so the minimum is
        /// only meaningful when every value is finite), and the fractional part of 0 ≤ x < 2^52
        /// comes from rounding through 2^52 (x86-64's baseline has no truncation instruction,
        /// so `rounded(.towardZero)` would be a libm call per value); larger values are integers.
        mutating func add(_ values: UnsafeBufferPointer<Double>) {
            typealias Lanes = SIMD8<Double>
            typealias Counts = SIMD8<Int64>
            let big = Lanes(repeating: 0x1p52), limit = Lanes(repeating: 1e-3)
            var low = Lanes(repeating: minimum), fractional = Counts.zero, notFinite = Counts.zero
            let steps = values.count / Lanes.scalarCount
            let raw = UnsafeRawPointer(values.baseAddress)
            for step in 0..<steps {
                let v = raw!.loadUnaligned(fromByteOffset: step * MemoryLayout<Lanes>.stride, as: Lanes.self)
                notFinite &+= Counts.zero.replacing(with: 1, where: .!((v - v) .== Lanes.zero))
                low.replace(with: v, where: v .< low)
                let nearest = (v + big) - big
                let floor = nearest.replacing(with: nearest - 1, where: nearest .> v)
                fractional &+= Counts.zero.replacing(with: 1, where: (v .>= Lanes.zero) .& (v .< big) .& ((v - floor) .> limit))
            }
            var lowest = low.min(), fractions = Int(fractional.wrappedSum()), nonFiniteCount = Int(notFinite.wrappedSum())
            for value in values[(steps * Lanes.scalarCount)...] {
                nonFiniteCount += value.isFinite ? 0 : 1
                lowest = value < lowest ? value : lowest
                let nearest = (value + 0x1p52) - 0x1p52
                let floor = nearest > value ? nearest - 1 : nearest
                fractions += value >= 0 && value < 0x1p52 && value - floor > 1e-3 ? 1 : 0
            }
            minimum = lowest
            nonFinite += nonFiniteCount
            if fractions > 0 { looksLog1p = true }
        }
    }

    public static func profile(_ matrix: MatrixReader) throws(AnnDataError) -> DataProfile {
        var profile = DataProfile()
        try matrix.forEachValueBlock { values in profile.add(values) }
        return profile
    }

    /// Tests `targets` (indices into `design.targets`) × the genes of `window` (gathered
    /// column-major over at least the rows in play), writing target k's result for the window's
    /// g-th gene to `output[k * rowStride + g]`: pdex's target-major order when `output` starts at
    /// the window's first gene of a shard `rowStride` genes wide. Genes run on `threads` threads.
    func test(targets: [Int], window: ColumnWindow, threads: Int, into output: UnsafeMutableBufferPointer<DEValues>, rowStride: Int) {
        switch window {
        case .float(let slab): test(targets: targets, slab: slab, threads: threads, into: output, rowStride: rowStride)
        case .double(let slab): test(targets: targets, slab: slab, threads: threads, into: output, rowStride: rowStride)
        }
    }

    private func test<Value: GatheredValue>(targets: [Int], slab: ColumnMajorSlab<Value>, threads: Int,
                                            into output: UnsafeMutableBufferPointer<DEValues>, rowStride: Int) {
        let genes = slab.columns.count
        precondition(targets.isEmpty || (targets.count - 1) * rowStride + genes <= output.count, "output too small")
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
        // `threads` workers, each taking every threads-th gene: costs per gene vary (sparsity), so
        // interleaving balances them without a shared queue.
        let workers = max(1, min(threads, genes))
        nonisolated(unsafe) let output = output
        slab.rows.withUnsafeBufferPointer { rows in
            slab.values.withUnsafeBufferPointer { values in
                nonisolated(unsafe) let (rows, values) = (rows, values)
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    var worker = GeneWorker(engine: self, targets: targets, groupOfRow: groupOfRow)
                    for g in stride(from: w, to: genes, by: workers) {
                        let range = slab.indptr[g]..<slab.indptr[g + 1]
                        worker.compare(rows: UnsafeBufferPointer(rebasing: rows[range]),
                                       values: UnsafeBufferPointer(rebasing: values[range])) { k, values in
                            output[k * rowStride + g] = values
                        }
                    }
                }
            }
        }
    }
}

/// The numbers of one output row, in pdex's column order (names come from the design; FDR is
/// added over the whole table at the end).
public struct DEValues: Sendable, Equatable {
    public var targetMean: Double
    public var referenceMean: Double
    public var percentChange: Double
    public var foldChange: Double
    public var pValue: Double
    public var statistic: Double

    public init(targetMean: Double, referenceMean: Double, percentChange: Double, foldChange: Double, pValue: Double,
                statistic: Double) {
        self.targetMean = targetMean
        self.referenceMean = referenceMean
        self.percentChange = percentChange
        self.foldChange = foldChange
        self.pValue = pValue
        self.statistic = statistic
    }
}

/// Per-thread scratch for one gene at a time. Each group's values are sorted in place in one
/// flat buffer, so a gene costs no allocation however many targets it is tested for.
private struct GeneWorker {
    let engine: DifferentialExpression
    let targets: [Int]
    let groupOfRow: [Int32]
    /// Group boundaries in `flat` (targets, then the reference).
    var offsets: [Int]
    var cursors: [Int]
    /// Each stored entry's group (scratch for `distribute`).
    var entryGroups: [Int32] = []
    var flat: [Double] = []
    /// One-vs-rest: the values outside the current target.
    var rest: [Double] = []
    var exactNull = MannWhitneyExactNull()
    /// Anderson-Darling's O(N) constants for each pooled size met (groups have few sizes).
    var standardizations: [Int: AndersonDarling.Standardization] = [:]
    let foldChange: FoldChange
    /// Cells in each target (read per target and gene, so kept contiguous).
    let targetSizes: [Int]

    init(engine: DifferentialExpression, targets: [Int], groupOfRow: [Int32]) {
        self.engine = engine
        self.targets = targets
        self.groupOfRow = groupOfRow
        targetSizes = targets.map { engine.design.targetRows[$0].count }
        offsets = [Int](repeating: 0, count: targets.count + 2)
        cursors = offsets
        // The clip value was validated when the plan was made.
        foldChange = (try? FoldChange(clip: engine.parameters.clipValue)) ?? (try! FoldChange(clip: nil))
    }

    /// Tests every target on one gene's stored entries; `emit(k, values)` receives target k's row.
    mutating func compare<Value: GatheredValue>(rows: UnsafeBufferPointer<Int32>, values: UnsafeBufferPointer<Value>,
                                                emit: (Int, DEValues) -> Void) {
        distribute(rows: rows, values: values)
        let design = engine.design
        var flat = self.flat
        self.flat = []
        defer { self.flat = flat }
        flat.withUnsafeMutableBufferPointer { flat in
            func bucket(_ k: Int) -> UnsafeMutableBufferPointer<Double> {
                UnsafeMutableBufferPointer(rebasing: flat[offsets[k]..<offsets[k + 1]])
            }
            if let referenceRows = design.referenceRows {
                // The reference is the same for every target: its mean, moments or sorted values
                // are computed once per gene.
                let reference = Group(values: bucket(targets.count), size: referenceRows.count)
                let referenceMean = mean(reference)
                let summary: ReferenceSummary = engine.parameters.metric == .tTest
                    ? .moments(reference.moments()) : .sorted(reference.sortInPlace())
                for k in targets.indices {
                    let target = Group(values: bucket(k), size: targetSizes[k])
                    emit(k, row(target: target, reference: summary, referenceMean: referenceMean))
                }
                return
            }
            // One-vs-rest: the rest is every cell outside the target, in row order.
            if rest.count < values.count { rest = [Double](repeating: 0, count: values.count) }
            var restScratch = self.rest
            self.rest = []
            defer { self.rest = restScratch }
            restScratch.withUnsafeMutableBufferPointer { scratch in
                for k in targets.indices {
                    var kept = 0
                    for (row, value) in zip(rows, values) where groupOfRow[Int(row)] != Int32(k) {
                        scratch[kept] = Double(value)
                        kept += 1
                    }
                    let size = targetSizes[k]
                    let rest = Group(values: UnsafeMutableBufferPointer(rebasing: scratch[..<kept]), size: design.cellCount - size)
                    let referenceMean = mean(rest)
                    let summary: ReferenceSummary = engine.parameters.metric == .tTest
                        ? .moments(rest.moments()) : .sorted(rest.sortInPlace())
                    emit(k, row(target: Group(values: bucket(k), size: size), reference: summary, referenceMean: referenceMean))
                }
            }
        }
    }

    /// Counting sort of a gene's entries by group into `flat`, in row order within a group:
    /// group k's values are flat[offsets[k]..<offsets[k + 1]]. Each entry's group is looked up
    /// once (the lookups miss cache) and kept for the second pass.
    private mutating func distribute<Value: GatheredValue>(rows: UnsafeBufferPointer<Int32>, values: UnsafeBufferPointer<Value>) {
        if entryGroups.count < rows.count { entryGroups = [Int32](repeating: 0, count: max(rows.count, 2 * entryGroups.count)) }
        if flat.count < rows.count { flat = [Double](repeating: 0, count: max(rows.count, 2 * flat.count)) }
        let groupOfRow = self.groupOfRow
        offsets.withUnsafeMutableBufferPointer { offsets in
            entryGroups.withUnsafeMutableBufferPointer { entryGroups in
                for k in offsets.indices { offsets[k] = 0 }
                groupOfRow.withUnsafeBufferPointer { groupOfRow in
                    for (i, row) in rows.enumerated() {
                        let group = groupOfRow[Int(row)]
                        entryGroups[i] = group
                        offsets[Int(group) + 1] += 1  // group −1 (not in play) counts in slot 0
                    }
                }
                // Slot 0 held the entries not in play; group k starts after groups 0..<k.
                offsets[0] = 0
                for k in 1..<offsets.count { offsets[k] += offsets[k - 1] }
                cursors.withUnsafeMutableBufferPointer { cursors in
                    for k in cursors.indices { cursors[k] = offsets[k] }
                    flat.withUnsafeMutableBufferPointer { flat in
                        for i in values.indices {
                            let group = Int(entryGroups[i])
                            guard group >= 0 else { continue }
                            flat[cursors[group]] = Double(values[i])
                            cursors[group] += 1
                        }
                    }
                }
            }
        }
    }

    /// What a test needs of the reference group.
    private enum ReferenceSummary {
        case sorted(SortedSpan)
        case moments(SampleMoments)
    }

    private func mean(_ group: Group) -> Double {
        group.mean(log1p: engine.isLog1p, expAfterMean: engine.parameters.expPostAggregation)
    }

    /// One target's row. Sorts the target's values in place (after taking their mean, whose
    /// summation order is the rows').
    private mutating func row(target: Group, reference: ReferenceSummary, referenceMean: Double) -> DEValues {
        let parameters = engine.parameters
        let targetMean = mean(target)
        var statistic = Double.nan
        var p = Double.nan
        switch (parameters.metric, reference) {
        case (.wilcoxon, .sorted(let sortedReference)):
            let result = MannWhitney.test(target.sortInPlace(), sortedReference,
                                          useContinuity: parameters.continuityCorrection, exactNull: &exactNull)
            (statistic, p) = (result.statistic, result.pValue)
        case (.anderson, .sorted(let sortedReference)):
            // scipy raises ValueError (all values equal) → pdex reports (p 1, NaN); N = 2, where pdex
            // itself crashes, is reported the same way.
            let sortedTarget = target.sortInPlace()
            let total = sortedTarget.count + sortedReference.count
            if let result = try? AndersonDarling.test(sortedTarget, sortedReference, standardization: standardization(total)) {
                (statistic, p) = (result.statistic, result.pValue)
            }
        case (.tTest, .moments(let referenceMoments)):
            let result = StudentT.pooledTest(target.moments(), referenceMoments)
            (statistic, p) = (result.statistic, result.pValue)
        default:
            preconditionFailure("reference summarised for another metric")
        }
        return DEValues(targetMean: targetMean, referenceMean: referenceMean,
                        percentChange: FoldChange.percentChange(target: targetMean, reference: referenceMean),
                        foldChange: foldChange.foldChange(target: targetMean, reference: referenceMean),
                        pValue: p.isNaN ? 1 : p, statistic: statistic)
    }

    /// The cached constants for pooled size `total` (nil below 3, where the test fails anyway).
    private mutating func standardization(_ total: Int) -> AndersonDarling.Standardization? {
        if let known = standardizations[total] { return known }
        let made = try? AndersonDarling.Standardization(totalCount: total)
        if let made { standardizations[total] = made }
        return made
    }
}

/// A group's explicit (non-zero) values of one gene, in scratch storage, and its size; the rest
/// are zeros.
private struct Group {
    let values: UnsafeMutableBufferPointer<Double>
    let size: Int

    var zeroCount: Int { size - values.count }

    /// Sorts the values in place: take the mean and moments first.
    func sortInPlace() -> SortedSpan {
        // Sizes come from the design, so the zero count is never negative.
        SortedSpan(sortingInPlace: values, zeroCount: zeroCount)
    }

    func moments() -> SampleMoments {
        SampleMoments(UnsafeBufferPointer(values)).merged(with: SampleMoments(count: zeroCount, mean: 0, m2: 0))
    }

    /// pdex `_sample_mean`: mean, expm1 of the mean, or mean of expm1 (expm1(0) = 0, so zeros
    /// stay zeros), summed in row order. Empty group → NaN.
    func mean(log1p: Bool, expAfterMean: Bool) -> Double {
        guard size > 0 else { return .nan }
        if log1p && !expAfterMean {
            return values.reduce(0) { $0 + Foundation.expm1($1) } / Double(size)
        }
        let mean = values.reduce(0, +) / Double(size)
        return log1p ? Foundation.expm1(mean) : mean
    }
}
