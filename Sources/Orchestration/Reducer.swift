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

    enum CodingKeys: String, CodingKey {
        case format, version, results, rows, partial, shards
        case runID = "run_id", fdrColumn = "fdr_column", discoveriesAt005 = "discoveries_fdr_0.05"
        case discoveriesAt01 = "discoveries_fdr_0.1", missingShards = "missing_shards"
    }
}

/// Checks every shard's marker against the plan, concatenates the parts in global unit order,
/// recomputes FDR over the whole table as the reference does, and writes the results and
/// summary atomically.
public enum Reducer {
    public static func reduce(_ run: RunDirectory, allowPartial: Bool = false) throws -> RunSummary {
        let plan = try run.readPlan()
        var present: [Int] = []
        var missing: [Int] = []
        var timings: [RunSummary.ShardTiming] = []
        for shard in plan.shards.indices {
            guard FileManager.default.fileExists(atPath: run.markerURL(shard).path) else { missing.append(shard); continue }
            let marker = try verifiedMarker(plan, run: run, shard: shard)
            present.append(shard)
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
        case .de: summary = try reduceDE(plan, run: run, shards: present, to: output)
        }
        summary.missingShards = missing
        summary.partial = !missing.isEmpty
        summary.shards = timings
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(summary), to: run.summaryURL)
        return summary
    }

    /// The marker of a shard whose part is exactly what the worker wrote for this plan.
    static func verifiedMarker(_ plan: Plan, run: RunDirectory, shard: Int) throws -> ShardMarker {
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
        guard try SHA256.file(run.partURL(shard).path) == marker.sha256 else {
            throw OrchestrationError("\(name): part is corrupted (sha256 differs from its done marker); delete \(run.markerURL(shard).lastPathComponent) and rerun the shard")
        }
        return marker
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
    static func reduceDE(_ plan: Plan, run: RunDirectory, shards: [Int], to output: URL) throws -> RunSummary {
        guard let de = plan.analysis.de else { throw OrchestrationError("\(run.planURL.path): DE plan without its DE section") }
        let parts = try shards.map { try DEPart.Reader(url: run.partURL($0), shard: $0) }
        // pdex's order is target-major, genes in var order. Perturbation shards hold whole
        // targets; feature shards hold every target over their genes, so a target's row is
        // pieced together from each part's stretch.
        let order: [(part: Int, record: Int)] = {
            var order: [(part: Int, record: Int)] = []
            order.reserveCapacity(parts.reduce(0) { $0 + $1.rows })
            switch plan.axis {
            case .features:
                let widths = shards.map { plan.shards[$0].units.count }
                for target in de.targets.indices {
                    for (p, width) in widths.enumerated() {
                        for g in 0..<width { order.append((p, target * width + g)) }
                    }
                }
            default:
                for (p, part) in parts.enumerated() { for r in 0..<part.rows { order.append((p, r)) } }
            }
            return order
        }()
        let pValues = order.map { parts[$0.part].pValue($0.record) }
        let fdr = try BenjaminiHochberg.scipy(pValues)
        let targets = de.targets.map { Array(CSVText.field($0).utf8) }
        let reference = Array(CSVText.field(de.referenceName).utf8)
        let genes = de.genes.map { Array(CSVText.field($0).utf8) }
        // Lines are formatted in chunks on every core, a round of chunks at a time, while the
        // previous round is written (writing and its sha256 are serial).
        let chunkRows = 1 << 16
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunkCount = (order.count + chunkRows - 1) / chunkRows
        let rounds = (chunkCount + lanes - 1) / lanes
        let format = { @Sendable (round: Int) -> [[UInt8]] in
            let chunks = (round * lanes)..<min(chunkCount, (round + 1) * lanes)
            let formatted = Mutex([[UInt8]](repeating: [], count: chunks.count))
            DispatchQueue.concurrentPerform(iterations: chunks.count) { lane in
                let chunk = chunks.lowerBound + lane
                var line = CSVLineBuffer()
                line.bytes.reserveCapacity(chunkRows * 160)
                for position in (chunk * chunkRows)..<min(order.count, (chunk + 1) * chunkRows) {
                    let entry = order[position]
                    let record = parts[entry.part].record(entry.record)
                    line.append(targets[record.target]); line.append(UInt8(ascii: ","))
                    line.append(reference); line.append(UInt8(ascii: ","))
                    line.append(genes[record.gene]); line.append(UInt8(ascii: ","))
                    let v = record.values
                    // Means and FDRs repeat (a target's mean takes few values, a gene's reference
                    // mean is the same for every target, BH has plateaus): those go through the cache.
                    line.number(v.targetMean, cached: true); line.append(UInt8(ascii: ","))
                    line.number(v.referenceMean, cached: true); line.append(UInt8(ascii: ","))
                    for value in [v.percentChange, v.foldChange, v.pValue, v.statistic] {
                        line.number(value, cached: false)
                        line.append(UInt8(ascii: ","))
                    }
                    line.number(fdr[position], cached: true); line.append(UInt8(ascii: "\n"))
                }
                formatted.withLock { $0[lane] = line.bytes }
            }
            return formatted.withLock { $0 }
        }
        try AtomicFile.stream(to: output) { writer in
            try writer.append(DETable.columns.joined(separator: ",") + "\n")
            try writer.flush()
            var ready = rounds > 0 ? format(0) : []
            for round in 0..<rounds {
                let next = Mutex<[[UInt8]]>([])
                let group = DispatchGroup()
                if round + 1 < rounds {
                    DispatchQueue.global().async(group: group) {
                        let formatted = format(round + 1)
                        next.withLock { $0 = formatted }
                    }
                }
                for bytes in ready { try bytes.withUnsafeBytes { try writer.write($0) } }
                group.wait()
                ready = next.withLock { $0 }
            }
        }
        return RunSummary(runID: plan.runID, results: output.lastPathComponent, rows: order.count, fdrColumn: "fdr",
                          discoveriesAt005: fdr.filter { $0 < 0.05 }.count, discoveriesAt01: fdr.filter { $0 < 0.1 }.count,
                          missingShards: [], partial: false, shards: [])
    }
}

/// A CSV line buffer: bytes appended directly, numbers formatted by `CSVText.number`'s rule
/// without an intermediate String per value, and repeated numbers copied from a cache.
struct CSVLineBuffer: TextOutputStream {
    var bytes: [UInt8] = []
    /// Direct-mapped by bit pattern: `cacheKeys[slot]` (a NaN pattern when empty: NaN is never
    /// cached) and its text in `cacheText[slot * slotBytes...]`, `cacheLengths[slot]` long.
    private var cacheKeys = [UInt64](repeating: 0x7FF8_0000_0000_0001, count: 1 << cacheBits)
    private var cacheLengths = [UInt8](repeating: 0, count: 1 << cacheBits)
    private var cacheText = [UInt8](repeating: 0, count: (1 << cacheBits) * slotBytes)
    private static let cacheBits = 15
    private static let slotBytes = 32

    mutating func append(_ byte: UInt8) { bytes.append(byte) }
    mutating func append(_ field: [UInt8]) { bytes.append(contentsOf: field) }

    /// `CSVText.number`: empty for NaN, `inf`/`-inf`, else Swift's shortest round-trip form
    /// (`Double.write(to:)`, what `"\(value)"` prints).
    mutating func number(_ value: Double, cached: Bool) {
        if value.isNaN { return }
        guard cached else { value.write(to: &self); return }
        let key = value.bitPattern
        let slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> (64 - UInt64(Self.cacheBits)))
        let base = slot * Self.slotBytes
        if cacheKeys[slot] == key {
            cacheText.withUnsafeBufferPointer { bytes.append(contentsOf: $0[base..<(base + Int(cacheLengths[slot]))]) }
            return
        }
        let start = bytes.count
        value.write(to: &self)
        let length = bytes.count - start
        guard length <= Self.slotBytes else { return }
        cacheKeys[slot] = key
        cacheLengths[slot] = UInt8(length)
        for i in 0..<length { cacheText[base + i] = bytes[start + i] }
    }

    mutating func write(_ string: String) { bytes.append(contentsOf: string.utf8) }
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
}
