import Analyses
import Foundation
import Synchronization
import Stats

/// `parts/NNNNN.part`: one shard's rows, binary so that numbers travel bit-exact (NaN included)
/// and big DE tables stay compact. Layout (little-endian): the 8-byte magic `SCTPART1`, a kind
/// byte (1 DE, 2 DiD), the shard index (UInt32) and the row count (UInt64), then the body.
/// DE body: fixed 56-byte records (target index Int32, gene index Int32, target mean, reference
/// mean, percent change, fold change, p-value, statistic as Float64). DiD body: the skipped
/// cell types (UInt32 count, then name and reason strings), then one record per row. Strings are
/// a UInt32 byte length and UTF-8 bytes.
enum PartFormat {
    static let magic = Array("SCTPART1".utf8)
    static let deKind: UInt8 = 1
    static let didKind: UInt8 = 2
    static let headerSize = 8 + 1 + 4 + 8
    static let deRecordSize = 4 + 4 + 6 * 8
}

/// Little-endian encoding into a byte buffer.
struct BinaryEncoder {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ value: Double) { append(value.bitPattern) }

    mutating func append(_ text: String) {
        append(UInt32(text.utf8.count))
        bytes.append(contentsOf: text.utf8)
    }

    mutating func header(kind: UInt8, shard: Int, rows: Int) {
        bytes.append(contentsOf: PartFormat.magic)
        append(kind)
        append(UInt32(shard))
        append(UInt64(rows))
    }
}

/// Reads what `BinaryEncoder` wrote; every read is bounds-checked so a damaged part is an error.
struct BinaryDecoder {
    let data: Data
    let file: String
    var offset = 0

    init(_ data: Data, file: String) {
        self.data = data
        self.file = file
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= data.count else { throw OrchestrationError("\(file): truncated part (at byte \(offset))") }
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    mutating func double() throws -> Double { Double(bitPattern: try read(UInt64.self)) }

    mutating func string() throws -> String {
        let length = Int(try read(UInt32.self))
        guard offset + length <= data.count else { throw OrchestrationError("\(file): truncated part (at byte \(offset))") }
        let text = String(decoding: data[data.startIndex + offset ..< data.startIndex + offset + length], as: UTF8.self)
        offset += length
        return text
    }

    /// Checks the magic, kind and shard; returns the row count.
    mutating func header(kind: UInt8, shard: Int) throws -> Int {
        guard data.count >= PartFormat.headerSize, Array(data.prefix(8)) == PartFormat.magic else {
            throw OrchestrationError("\(file): not a sctrial-plan part")
        }
        offset = 8
        guard try read(UInt8.self) == kind else { throw OrchestrationError("\(file): part of another analysis kind") }
        guard Int(try read(UInt32.self)) == shard else { throw OrchestrationError("\(file): part of another shard") }
        return Int(try read(UInt64.self))
    }
}

/// DiD rows in and out of parts.
enum DiDPart {
    static func encode(_ result: DiDShardResult, shard: Int) -> [UInt8] {
        var out = BinaryEncoder()
        out.header(kind: PartFormat.didKind, shard: shard, rows: result.rows.count)
        out.append(UInt32(result.skipped.count))
        for (celltype, why) in result.skipped { out.append(celltype); out.append(why) }
        for row in result.rows {
            let r = row.result
            out.append(row.feature)
            out.append(UInt8(row.celltype == nil ? 0 : 1))
            out.append(row.celltype ?? "")
            for value in [r.betaDiD, r.seDiD, r.pDiD, r.betaTime, r.pTime, r.residSD] { out.append(value) }
            out.append(Int64(r.nUnits))
            out.append(r.covType?.rawValue ?? "")
            out.append(r.nanReason?.rawValue ?? "")
            out.append(UInt8(r.bootstrap == nil ? 0 : 1))
            if let b = r.bootstrap {
                for value in [b.pValue, b.standardError, b.ciLow, b.ciHigh] { out.append(value) }
                out.append(Int64(b.validDraws))
            }
        }
        return out.bytes
    }

    static func decode(_ data: Data, shard: Int, file: String) throws -> DiDShardResult {
        var input = BinaryDecoder(data, file: file)
        let count = try input.header(kind: PartFormat.didKind, shard: shard)
        var skipped: [(celltype: String, why: String)] = []
        for _ in 0..<Int(try input.read(UInt32.self)) { skipped.append((try input.string(), try input.string())) }
        var rows: [DiDRow] = []
        rows.reserveCapacity(count)
        for _ in 0..<count {
            let feature = try input.string()
            let hasCelltype = try input.read(UInt8.self) == 1
            let celltype = try input.string()
            let numbers = try (0..<6).map { _ in try input.double() }
            let units = Int(try input.read(Int64.self))
            let covType = DiDCovarianceType(rawValue: try input.string())
            let nanReason = DiDNaNReason(rawValue: try input.string())
            var bootstrap: DiDBootstrapResult?
            if try input.read(UInt8.self) == 1 {
                let b = try (0..<4).map { _ in try input.double() }
                bootstrap = DiDBootstrapResult(pValue: b[0], standardError: b[1], ciLow: b[2], ciHigh: b[3],
                                               validDraws: Int(try input.read(Int64.self)))
            }
            let result = DiDFeatureResult(betaDiD: numbers[0], seDiD: numbers[1], pDiD: numbers[2], betaTime: numbers[3],
                                          pTime: numbers[4], nUnits: units, residSD: numbers[5], covType: covType,
                                          nanReason: nanReason, bootstrap: bootstrap)
            rows.append(DiDRow(feature: feature, celltype: hasCelltype ? celltype : nil, result: result))
        }
        guard input.offset == data.count else { throw OrchestrationError("\(file): trailing bytes after the last row") }
        return DiDShardResult(rows: rows, skipped: skipped)
    }
}

/// DE rows in and out of parts: fixed-size records read in place from a mapped file.
enum DEPart {
    static func write(_ result: DEShardResult, shard: Int, into writer: inout AtomicFile.Writer) throws {
        var header = BinaryEncoder()
        header.header(kind: PartFormat.deKind, shard: shard, rows: result.rows.count)
        try writer.append(bytes: header.bytes)
        // Records are stored straight into a reused 1 MiB buffer (no per-row arrays).
        let perChunk = (1 << 20) / PartFormat.deRecordSize
        var chunk = [UInt8](repeating: 0, count: perChunk * PartFormat.deRecordSize)
        var position = 0
        var filled = 0
        for target in result.targets {
            for gene in result.genes {
                let row = result.rows[position]
                position += 1
                chunk.withUnsafeMutableBytes { raw in
                    let base = filled * PartFormat.deRecordSize
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
        try writer.append(bytes: Array(chunk[..<(filled * PartFormat.deRecordSize)]))
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
                throw OrchestrationError("\(url.path): cannot read part: \(error.localizedDescription)")
            }
            var decoder = BinaryDecoder(data, file: url.path)
            rows = try decoder.header(kind: PartFormat.deKind, shard: shard)
            guard data.count == PartFormat.headerSize + rows * PartFormat.deRecordSize else {
                throw OrchestrationError("\(url.path): \(data.count) bytes, but \(rows) rows need \(PartFormat.headerSize + rows * PartFormat.deRecordSize)")
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
                    let base = PartFormat.headerSize + i * PartFormat.deRecordSize
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
                    Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: PartFormat.headerSize + i * PartFormat.deRecordSize + 8 + 4 * 8, as: UInt64.self)))
                }
            }
        }
    }
}

/// DE parts this process computed and has just written, kept in memory for the reduce that
/// follows in the same process (`run` with a one-shard plan): the reducer then uses the rows
/// instead of reading and hashing gigabytes it has just written. Only a part whose marker
/// carries the sha256 recorded here is taken from memory.
public final class ComputedParts: Sendable {
    struct Part {
        let sha256: String
        let result: DEShardResult
        /// BH over the rows in their order: the whole table's FDR when the plan has one shard,
        /// computed while the part was written.
        let fdr: [Double]?
    }
    private let parts = Mutex<[Int: Part]>([:])

    public init() {}

    func keep(shard: Int, _ part: Part) {
        parts.withLock { $0[shard] = part }
    }

    /// What this process computed for `shard`, if it wrote the part its marker describes.
    func part(shard: Int, marker: ShardMarker) -> Part? {
        parts.withLock { parts in parts[shard].flatMap { $0.sha256 == marker.sha256 ? $0 : nil } }
    }
}

/// `parts/NNNNN.done`: written after the part is in place; the reducer trusts a part only when
/// its marker matches the plan and the part's size and sha256.
public struct ShardMarker: Codable, Sendable, Equatable {
    public static let format = "sctrial-plan.done"
    public var format = ShardMarker.format
    public var version = 1
    public var runID: String
    public var shard: Int
    public var rows: Int
    public var bytes: Int
    public var sha256: String
    public var seconds: Double
    public var peakRSSBytes: Int
    /// Bytes the worker read through read(2)/pread(2) (`rchar`), page cache included: the I/O a
    /// shard costs, whatever is cached.
    public var readBytes: Int
    public var host: String
    public var finishedAt: String

    enum CodingKeys: String, CodingKey {
        case format, version, shard, rows, bytes, sha256, seconds, host
        case runID = "run_id", peakRSSBytes = "peak_rss_bytes", finishedAt = "finished_at", readBytes = "read_bytes"
    }

    static func read(_ url: URL) -> ShardMarker? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(ShardMarker.self, from: data)
    }

    func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }
}

/// `parts/NNNNN.failed`: the last failure of a shard (removed when it succeeds).
public struct ShardFailure: Codable, Sendable, Equatable {
    public var shard: Int
    public var exitCode: Int32
    public var message: String
    public var at: String

    enum CodingKeys: String, CodingKey { case shard, message, at, exitCode = "exit_code" }

    static func read(_ url: URL) -> ShardFailure? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(ShardFailure.self, from: data)
    }
}
