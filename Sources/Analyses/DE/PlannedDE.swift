import AnnData
import Dispatch
import Foundation
import Stats
import Synchronization

/// Perturbation-vs-control DE (pdex 0.1.28) as planned: split by perturbations (targets) or
/// features (genes); the table is pdex's, target-major with genes in var order.
public struct PlannedDE: ShardedAnalysis {
    public static let name = "de"
    static let partKind: UInt8 = 1

    public var parameters: DEParameters
    /// Whether the values are log1p, settled at plan time (auto-detected or given).
    public var isLog1p: Bool
    /// Target labels in pdex's order (first appearance), the reference excluded.
    public var targets: [String]
    /// The `reference` column's value.
    public var referenceName: String
    /// Gene names in var order.
    public var genes: [String]
    /// The matrix's minimum when it is negative (e.g. z-scored data): the tests stand, but fold
    /// and percent change are not meaningful, which summary.json repeats. Nil otherwise.
    public var negativeMinimum: Double?

    enum CodingKeys: String, CodingKey {
        case parameters, targets, genes
        case isLog1p = "is_log1p", referenceName = "reference_name", negativeMinimum = "negative_minimum"
    }

    public func units(along axis: ShardAxis) -> [String] {
        axis == .perturbations ? targets : genes
    }

    public func computeShard(_ input: ShardInput) throws -> DEShardResult {
        var parameters = parameters
        parameters.isLog1p = isLog1p ? .yes : .no
        var selection = DESelection(stagedMatrix: input.staged.matrix)
        switch input.axis {
        case .perturbations: selection.targets = input.units
        case .features: selection.genes = input.units
        default: throw AnalysisError("\(input.planPath): a DE plan cannot be split by \(input.axis.rawValue)")
        }
        let result = try DifferentialExpression.shard(path: input.inputPath, parameters: parameters, selection: selection,
                                                      threads: input.threads, budget: input.budget, gatherBudget: input.gatherBudget)
        guard result.targets.count == (input.axis == .perturbations ? input.units.count : targets.count) else {
            throw AnalysisError("\(input.inputPath): the file now has other targets than at planning; plan the run again")
        }
        return result
    }

    public func rowCount(_ result: DEShardResult) -> Int { result.rows.count }

    /// Kept for a reduce in the same process: the rows, and when they are the whole table
    /// (a one-shard plan) their FDR, computed on another core while the part is written.
    struct Kept: Sendable {
        let result: DEShardResult
        let fdr: [Double]?
    }

    public func writePart<Sink: ByteSink>(_ result: DEShardResult, input: ShardInput, keep: Bool,
                                          into sink: inout Sink) throws -> (any Sendable)? {
        let fdr = Mutex<[Double]?>(nil)
        let ranking = DispatchGroup()
        if keep && input.shardCount == 1 {
            DispatchQueue.global().async(group: ranking) {
                let computedFDR = try? BenjaminiHochberg.scipy(result.rows.map(\.pValue))
                fdr.withLock { $0 = computedFDR }
            }
        }
        try DEPart.write(result, shard: input.index, into: &sink)
        ranking.wait()
        return keep ? Kept(result: result, fdr: fdr.withLock { $0 }) : nil
    }

    /// DE parts are mapped, not loaded: one pass collects the p-values in pdex's order for BH,
    /// a second writes the rows in that order.
    public func reduce<Sink: ByteSink>(_ input: ReduceInput, into table: inout Sink) throws -> TableSummary {
        let parts = try input.parts.map { part in
            try (part.kept as? Kept).map { DEPart.Reader(computed: $0.result) } ?? DEPart.Reader(url: part.file, shard: part.shard)
        }
        let order = DEOrder(axis: input.axis, widths: input.parts.map(\.units.count), rows: parts.map(\.rows))
        let wholeTable = input.parts.count == 1 && input.shardCount == 1
        let fdr = try (wholeTable ? (input.parts[0].kept as? Kept)?.fdr : nil) ?? BenjaminiHochberg.scipy((0..<order.count).map { position in
            let (part, record) = order.locate(position)
            return parts[part].pValue(record)
        })
        let targets = self.targets.map { Array(CSVText.field($0).utf8) }
        let reference = Array(CSVText.field(referenceName).utf8)
        let genes = self.genes.map { Array(CSVText.field($0).utf8) }
        // Lines are formatted in chunks on every core, a round of chunks at a time, while the
        // previous round is written (writing is serial). Two banks of per-lane buffers take
        // turns, reused from round to round: fresh gigabytes of buffers would each be
        // page-faulted in.
        let chunkRows = 1 << 16
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunkCount = (order.count + chunkRows - 1) / chunkRows
        let rounds = (chunkCount + lanes - 1) / lanes
        nonisolated(unsafe) let lines = (0..<(2 * lanes)).map { _ in CSVLineBuffer(capacity: chunkRows * 160) }
        let format = { @Sendable (round: Int) in
            let chunks = (round * lanes)..<min(chunkCount, (round + 1) * lanes)
            DispatchQueue.concurrentPerform(iterations: chunks.count) { lane in
                let chunk = chunks.lowerBound + lane
                let slot = (round % 2) * lanes + lane
                let line = lines[slot]
                line.removeAll()
                let comma = UInt8(ascii: ",")
                for position in (chunk * chunkRows)..<min(order.count, (chunk + 1) * chunkRows) {
                    let entry = order.locate(position)
                    let record = parts[entry.part].record(entry.record)
                    line.append(targets[record.target]); line.append(comma)
                    line.append(reference); line.append(comma)
                    line.append(genes[record.gene]); line.append(comma)
                    let v = record.values
                    // Means and FDRs repeat (a target's mean takes few values, a gene's reference
                    // mean is the same for every target, BH has plateaus): those go through the cache.
                    line.number(v.targetMean, cached: true); line.append(comma)
                    line.number(v.referenceMean, cached: true); line.append(comma)
                    // Changes repeat with the means they come from (a target with no counts of a
                    // gene, say).
                    line.number(v.percentChange, cached: true); line.append(comma)
                    line.number(v.foldChange, cached: true); line.append(comma)
                    line.number(v.pValue, cached: false); line.append(comma)
                    line.number(v.statistic, cached: false); line.append(comma)
                    line.number(fdr[position], cached: true); line.append(UInt8(ascii: "\n"))
                }
            }
            return chunks.count
        }
        do {
            try table.append(DETable.columns.joined(separator: ",") + "\n")
            var ready = rounds > 0 ? format(0) : 0
            for round in 0..<rounds {
                let next = Mutex(0)
                let group = DispatchGroup()
                if round + 1 < rounds {
                    DispatchQueue.global().async(group: group) {
                        let formatted = format(round + 1)
                        next.withLock { $0 = formatted }
                    }
                }
                for lane in 0..<ready {
                    try table.write(lines[(round % 2) * lanes + lane].bytes)
                }
                group.wait()
                ready = next.withLock { $0 }
            }
        }
        var summary = TableSummary(rows: order.count, fdrColumn: "fdr", fdr: fdr)
        summary.foldChangeMeaningful = negativeMinimum == nil
        if let minimum = negativeMinimum {
            summary.warnings = ["\(parameters.layer ?? "X") has negative values (minimum \(minimum)), e.g. scaled (z-scored) data: fold_change and percent_change are not meaningful for negative data; p_value, statistic and fdr are computed as pdex does"]
        }
        return summary
    }
}

/// Where the reduced table's rows come from: pdex's order is target-major, genes in var order.
/// Perturbation shards hold whole targets, one after the other; feature shards hold every
/// target over their genes, so a target's row is pieced together from each part's stretch.
/// Computed per row rather than listed (a list would be 16 bytes per row).
struct DEOrder {
    let count: Int
    /// Features: each gene slot's part and its offset within that part's width.
    private let slots: [(part: Int, offset: Int)]
    private let widths: [Int]
    /// Otherwise: each part's first row in the table.
    private let starts: [Int]?

    init(axis: ShardAxis, widths: [Int], rows: [Int]) {
        count = rows.reduce(0, +)
        self.widths = widths
        if axis == .features {
            slots = widths.enumerated().flatMap { part, width in (0..<width).map { (part, $0) } }
            starts = nil
        } else {
            slots = []
            var starts = [0]
            for n in rows { starts.append(starts.last! + n) }
            self.starts = starts
        }
    }

    func locate(_ position: Int) -> (part: Int, record: Int) {
        guard let starts else {
            let (target, slot) = position.quotientAndRemainder(dividingBy: slots.count)
            let (part, offset) = slots[slot]
            return (part, target * widths[part] + offset)
        }
        // The last part starting at or before `position` (empty parts are skipped).
        var low = 0, high = starts.count - 1
        while high - low > 1 {
            let middle = (low + high) / 2
            if starts[middle] <= position { low = middle } else { high = middle }
        }
        return (low, position - starts[low])
    }
}

/// DE rows in and out of parts: fixed-size records read in place from a mapped file.
enum DEPart {
    /// Target index Int32, gene index Int32, then target mean, reference mean, percent change,
    /// fold change, p-value and statistic as Float64.
    static let recordSize = 4 + 4 + 6 * 8

    static func write<Sink: ByteSink>(_ result: DEShardResult, shard: Int, into writer: inout Sink) throws {
        var header = BinaryEncoder()
        header.header(kind: PlannedDE.partKind, shard: shard, rows: result.rows.count)
        try writer.append(bytes: header.bytes)
        // Records are stored straight into a reused 1 MiB buffer (no per-row arrays).
        let perChunk = (1 << 20) / DEPart.recordSize
        var chunk = [UInt8](repeating: 0, count: perChunk * DEPart.recordSize)
        var position = 0
        var filled = 0
        for target in result.targets {
            for gene in result.genes {
                let row = result.rows[position]
                position += 1
                chunk.withUnsafeMutableBytes { raw in
                    let base = filled * DEPart.recordSize
                    raw.storeBytes(of: Int32(target).littleEndian, toByteOffset: base, as: Int32.self)
                    raw.storeBytes(of: Int32(gene).littleEndian, toByteOffset: base + 4, as: Int32.self)
                    func store(_ value: Double, _ i: Int) {
                        raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: base + 8 + 8 * i, as: UInt64.self)
                    }
                    store(row.targetMean, 0); store(row.referenceMean, 1); store(row.percentChange, 2)
                    store(row.foldChange, 3); store(row.pValue, 4); store(row.statistic, 5)
                }
                filled += 1
                if filled == perChunk {
                    try writer.append(bytes: chunk)
                    filled = 0
                }
            }
        }
        try writer.append(bytes: Array(chunk[..<(filled * DEPart.recordSize)]))
    }

    /// A DE part's records: mapped from its file, or the rows this process just computed and
    /// wrote (see `ComputedParts`). A class: the reducer reads it once per row, and copying a
    /// struct holding the rows would retain each of their arrays every time.
    final class Reader: Sendable {
        private enum Storage {
            case mapped(Data)
            case computed(DEShardResult)
        }
        private let storage: Storage
        let rows: Int

        init(url: URL, shard: Int) throws {
            let data: Data
            do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
                throw AnalysisError("\(url.path): cannot read part: \(error.localizedDescription)")
            }
            var decoder = BinaryDecoder(data, file: url.path)
            rows = try decoder.header(kind: PlannedDE.partKind, shard: shard)
            guard data.count == PartHeader.size + rows * DEPart.recordSize else {
                throw AnalysisError("\(url.path): \(data.count) bytes, but \(rows) rows need \(PartHeader.size + rows * DEPart.recordSize)")
            }
            storage = .mapped(data)
        }

        init(computed result: DEShardResult) {
            storage = .computed(result)
            rows = result.rows.count
        }

        /// Record `i`: target and gene indices and the six numbers.
        func record(_ i: Int) -> (target: Int, gene: Int, values: DEValues) {
            switch storage {
            case .computed(let result):
                let width = result.genes.count
                return (result.targets.lowerBound + i / width, result.genes.lowerBound + i % width, result.rows[i])
            case .mapped(let data):
                return data.withUnsafeBytes { raw in
                    let base = PartHeader.size + i * DEPart.recordSize
                    let target = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: base, as: Int32.self)))
                    let gene = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4, as: Int32.self)))
                    func value(_ k: Int) -> Double {
                        Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 8 + 8 * k, as: UInt64.self)))
                    }
                    return (target, gene, DEValues(targetMean: value(0), referenceMean: value(1), percentChange: value(2),
                                                   foldChange: value(3), pValue: value(4), statistic: value(5)))
                }
            }
        }

        func pValue(_ i: Int) -> Double {
            switch storage {
            case .computed(let result):
                return result.rows[i].pValue
            case .mapped(let data):
                return data.withUnsafeBytes { raw in
                    Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: PartHeader.size + i * DEPart.recordSize + 8 + 4 * 8, as: UInt64.self)))
                }
            }
        }
    }
}

