import Analyses
import Dispatch
import Foundation
import Synchronization
import Stats

/// `summary.json`, written with the results.
public struct RunSummary: Codable, Sendable, Equatable {
    public struct ShardTiming: Codable, Sendable, Equatable {
        public var shard: Int
        public var rows: Int
        public var seconds: Double
        public var peakRSSBytes: Int
        public var readBytes: Int

        enum CodingKeys: String, CodingKey { case shard, rows, seconds, peakRSSBytes = "peak_rss_bytes", readBytes = "read_bytes" }
    }

    public var format = "sctrial-plan.summary"
    public var version = 1
    public var runID: String
    public var results: String
    public var rows: Int
    /// The FDR column counted.
    public var fdrColumn: String
    public var discoveriesAt005: Int
    public var discoveriesAt01: Int
    /// Shards missing from a partial reduce (empty when complete).
    public var missingShards: [Int]
    public var partial: Bool
    public var shards: [ShardTiming]
    /// DE only: false when the matrix had negative values (scaled data), so the fold_change and
    /// percent_change columns mean nothing; `warnings` says why.
    public var foldChangeMeaningful: Bool?
    /// What a reader of the results should know (absent when nothing).
    public var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case format, version, results, rows, partial, shards, warnings
        case foldChangeMeaningful = "fold_change_meaningful"
        case runID = "run_id", fdrColumn = "fdr_column", discoveriesAt005 = "discoveries_fdr_0.05"
        case discoveriesAt01 = "discoveries_fdr_0.1", missingShards = "missing_shards"
    }
}

/// Checks every shard's marker against the plan, concatenates the parts in global unit order,
/// recomputes FDR over the whole table as the reference does, and writes the results and
/// summary atomically.
public enum Reducer {
    /// `plan`: the run's plan when the caller has read it already; `computed`: parts this
    /// process has just written, reduced from memory (see `ComputedParts`).
    public static func reduce(_ run: RunDirectory, plan: Plan? = nil, allowPartial: Bool = false,
                              computed: ComputedParts? = nil) throws -> RunSummary {
        let plan = try plan ?? run.readPlan()
        var present: [Int] = []
        var missing: [Int] = []
        var timings: [RunSummary.ShardTiming] = []
        var inMemory: [ComputedParts.Part?] = []
        for shard in plan.shards.indices {
            guard FileManager.default.fileExists(atPath: run.markerURL(shard).path) else { missing.append(shard); continue }
            let (marker, part) = try verifiedMarker(plan, run: run, shard: shard, computed: computed)
            present.append(shard)
            inMemory.append(part)
            timings.append(.init(shard: shard, rows: marker.rows, seconds: marker.seconds, peakRSSBytes: marker.peakRSSBytes,
                                 readBytes: marker.readBytes))
        }
        if !missing.isEmpty && !allowPartial {
            throw OrchestrationError("\(run.path): \(missing.count) of \(plan.shards.count) shards not done (\(listed(missing))); run them (`sctrial-plan run \(run.path)`) or reduce with --allow-partial")
        }
        let output = missing.isEmpty ? run.resultsURL : run.partialResultsURL
        var summary: RunSummary
        switch plan.analysis.kind {
        case .did: summary = try reduceDiD(plan, run: run, shards: present, to: output)
        case .de: summary = try reduceDE(plan, run: run, shards: present, inMemory: inMemory, to: output)
        }
        summary.missingShards = missing
        summary.partial = !missing.isEmpty
        summary.shards = timings
        if let de = plan.analysis.de {
            summary.foldChangeMeaningful = de.negativeMinimum == nil
            if let minimum = de.negativeMinimum {
                summary.warnings = ["\(de.parameters.layer ?? "X") has negative values (minimum \(minimum)), e.g. scaled (z-scored) data: fold_change and percent_change are not meaningful for negative data; p_value, statistic and fdr are computed as pdex does"]
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(summary), to: run.summaryURL)
        return summary
    }

    /// The marker of a shard whose part is exactly what the worker wrote for this plan, and the
    /// part's rows when this process computed them (see `ComputedParts`).
    static func verifiedMarker(_ plan: Plan, run: RunDirectory, shard: Int,
                               computed: ComputedParts?) throws -> (ShardMarker, ComputedParts.Part?) {
        let name = "shard \(shard) (\(run.partURL(shard).path))"
        guard let marker = ShardMarker.read(run.markerURL(shard)) else {
            throw OrchestrationError("\(name): unreadable done marker \(run.markerURL(shard).path); delete it and rerun the shard")
        }
        guard marker.runID == plan.runID, marker.shard == shard else {
            throw OrchestrationError("\(name): done marker belongs to another plan; delete it and rerun the shard")
        }
        guard FileManager.default.fileExists(atPath: run.partURL(shard).path) else {
            throw OrchestrationError("\(name): marked done but the part is missing; delete \(run.markerURL(shard).lastPathComponent) and rerun the shard")
        }
        // A part this process hashed as it wrote it needs no second reading.
        let part = computed?.part(shard: shard, marker: marker)
        guard try part != nil || SHA256.file(run.partURL(shard).path) == marker.sha256 else {
            throw OrchestrationError("\(name): part is corrupted (sha256 differs from its done marker); delete \(run.markerURL(shard).lastPathComponent) and rerun the shard")
        }
        return (marker, part)
    }

    static func listed(_ shards: [Int]) -> String {
        let shown = shards.prefix(10).map(String.init).joined(separator: ", ")
        return "shard\(shards.count == 1 ? "" : "s") " + shown + (shards.count > 10 ? ", …" : "")
    }

    static func reduceDiD(_ plan: Plan, run: RunDirectory, shards: [Int], to output: URL) throws -> RunSummary {
        guard let did = plan.analysis.did else { throw OrchestrationError("\(run.planURL.path): DiD plan without its DiD section") }
        var rows: [DiDRow] = []
        var skipped: [(String, String)] = []
        var seen = Set<String>()
        for shard in shards {
            let part = try DiDPart.decode(Data(contentsOf: run.partURL(shard)), shard: shard, file: run.partURL(shard).path)
            rows += part.rows
            for (celltype, why) in part.skipped where seen.insert(celltype).inserted { skipped.append((celltype, why)) }
        }
        // Skipped cell types in block order, whichever shard reported them.
        let blockIndex = Dictionary(did.celltypes.enumerated().compactMap { entry in entry.element.map { ($0, entry.offset) } },
                                    uniquingKeysWith: { a, _ in a })
        skipped.sort { (blockIndex[$0.0] ?? 0) < (blockIndex[$1.0] ?? 0) }
        let table = DiDTable(rows: rows, celltypes: did.celltypes, byCelltype: did.parameters.byCelltype, skipped: skipped)
        try AtomicFile.stream(to: output) { try $0.append(table.csv()) }
        let fdrColumn = did.parameters.byCelltype ? "FDR_DiD_stratified" : "FDR_DiD"
        let fdr = table.rows.map { did.parameters.byCelltype ? $0.fdrStratified : $0.fdr }
        return RunSummary(runID: plan.runID, results: output.lastPathComponent, rows: table.rows.count, fdrColumn: fdrColumn,
                          discoveriesAt005: fdr.filter { $0 < 0.05 }.count, discoveriesAt01: fdr.filter { $0 < 0.1 }.count,
                          missingShards: [], partial: false, shards: [])
    }

    /// DE parts are mapped, not loaded: one pass collects the p-values in pdex's order for BH,
    /// a second writes the rows in that order.
    static func reduceDE(_ plan: Plan, run: RunDirectory, shards: [Int], inMemory: [ComputedParts.Part?],
                         to output: URL) throws -> RunSummary {
        guard let de = plan.analysis.de else { throw OrchestrationError("\(run.planURL.path): DE plan without its DE section") }
        let parts = try zip(shards, inMemory).map { shard, part in
            try part.map { DEPart.Reader(computed: $0.result) } ?? DEPart.Reader(url: run.partURL(shard), shard: shard)
        }
        let order = DEOrder(axis: plan.axis, widths: shards.map { plan.shards[$0].units.count }, rows: parts.map(\.rows))
        let wholeTable = shards.count == 1 && plan.shards.count == 1
        let fdr = try (wholeTable ? inMemory[0]?.fdr : nil) ?? BenjaminiHochberg.scipy((0..<order.count).map { position in
            let (part, record) = order.locate(position)
            return parts[part].pValue(record)
        })
        let targets = de.targets.map { Array(CSVText.field($0).utf8) }
        let reference = Array(CSVText.field(de.referenceName).utf8)
        let genes = de.genes.map { Array(CSVText.field($0).utf8) }
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
        try AtomicFile.stream(to: output) { writer in
            try writer.append(DETable.columns.joined(separator: ",") + "\n")
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
                    try writer.write(lines[(round % 2) * lanes + lane].bytes)
                }
                group.wait()
                ready = next.withLock { $0 }
            }
        }
        return RunSummary(runID: plan.runID, results: output.lastPathComponent, rows: order.count, fdrColumn: "fdr",
                          discoveriesAt005: fdr.filter { $0 < 0.05 }.count, discoveriesAt01: fdr.filter { $0 < 0.1 }.count,
                          missingShards: [], partial: false, shards: [])
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

    init(axis: Plan.Axis, widths: [Int], rows: [Int]) {
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

/// A CSV chunk buffer: bytes stored straight into raw memory (grown, never shrunk, reused from
/// chunk to chunk), numbers formatted by `CSVText.number`'s rule without an intermediate String,
/// and repeated numbers copied from a cache. A class: each formatting lane owns one.
final class CSVLineBuffer: TextOutputStream {
    private(set) var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    /// Direct-mapped by bit pattern: `cacheKeys[slot]` (a NaN pattern when empty: NaN is never
    /// cached) and its text in `cacheText[slot * slotBytes...]`, `cacheLengths[slot]` long.
    private let cacheKeys: UnsafeMutablePointer<UInt64>
    private let cacheLengths: UnsafeMutablePointer<UInt8>
    private let cacheText: UnsafeMutablePointer<UInt8>
    private static let cacheBits = 15
    private static let slotBytes = 32

    init(capacity: Int = 1 << 20) {
        self.capacity = max(64, capacity)
        storage = .allocate(capacity: self.capacity)
        cacheKeys = .allocate(capacity: 1 << Self.cacheBits)
        cacheKeys.initialize(repeating: 0x7FF8_0000_0000_0001, count: 1 << Self.cacheBits)
        cacheLengths = .allocate(capacity: 1 << Self.cacheBits)
        cacheLengths.initialize(repeating: 0, count: 1 << Self.cacheBits)
        cacheText = .allocate(capacity: (1 << Self.cacheBits) * Self.slotBytes)
    }

    deinit {
        storage.deallocate()
        cacheKeys.deallocate()
        cacheLengths.deallocate()
        cacheText.deallocate()
    }

    /// The bytes so far (valid until the next append).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    func removeAll() { count = 0 }

    /// Room for `extra` more bytes.
    @inline(__always) func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        capacity = max(2 * capacity, count + extra)
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        grown.update(from: storage, count: count)
        storage.deallocate()
        storage = grown
    }

    @inline(__always) func append(_ byte: UInt8) {
        reserve(1)
        storage[count] = byte
        count += 1
    }

    func append(_ field: [UInt8]) {
        field.withUnsafeBufferPointer { append($0) }
    }

    @inline(__always) func append(_ field: UnsafeBufferPointer<UInt8>) {
        reserve(field.count)
        (storage + count).update(from: field.baseAddress!, count: field.count)
        count += field.count
    }

    /// `CSVText.number`: empty for NaN, `inf`/`-inf`, else Swift's shortest round-trip form
    /// (`Double.write(to:)`, what `"\(value)"` prints).
    func number(_ value: Double, cached: Bool) {
        if value.isNaN { return }
        if halfInteger(value) { return }
        var this = self
        guard cached else { value.write(to: &this); return }
        let key = value.bitPattern
        let slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> (64 - UInt64(Self.cacheBits)))
        let text = cacheText + slot * Self.slotBytes
        if cacheKeys[slot] == key {
            append(UnsafeBufferPointer(start: text, count: Int(cacheLengths[slot])))
            return
        }
        let start = count
        value.write(to: &this)
        let length = count - start
        guard length <= Self.slotBytes else { return }
        cacheKeys[slot] = key
        cacheLengths[slot] = UInt8(length)
        text.update(from: storage + start, count: length)
    }

    /// Whole and half numbers below 1e15 (rank statistics are all of this kind) printed
    /// directly, as `description` prints them ("796929.5", "3.0", "-0.0"); false for anything
    /// else.
    @inline(__always) func halfInteger(_ value: Double) -> Bool {
        let twice = Swift.abs(value) * 2
        // Rounding through 2^52 (no libm call): exact for these magnitudes.
        guard twice < 2e15, (twice + 0x1p52) - 0x1p52 == twice else { return false }
        let halves = UInt64(twice)
        var whole = halves >> 1
        reserve(20)
        if value.sign == .minus { storage[count] = UInt8(ascii: "-"); count += 1 }
        var digits = 1
        var scale: UInt64 = 10
        while digits < 16 && whole >= scale { digits += 1; scale &*= 10 }
        for k in stride(from: digits - 1, through: 0, by: -1) {
            storage[count + k] = UInt8(truncatingIfNeeded: whole % 10) &+ 0x30
            whole /= 10
        }
        count += digits
        storage[count] = UInt8(ascii: ".")
        storage[count + 1] = halves & 1 == 0 ? UInt8(ascii: "0") : UInt8(ascii: "5")
        count += 2
        return true
    }

    func write(_ string: String) {
        var string = string
        string.withUTF8 { append($0) }
    }

    func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { append(buffer) }
}
