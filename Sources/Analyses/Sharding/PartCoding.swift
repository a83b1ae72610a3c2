import Foundation

/// The header every part starts with (layout in docs/plan-json.md): the 8-byte magic
/// `SCTPART1`, the analysis' kind byte, the shard index (UInt32) and the row count (UInt64),
/// little-endian; the body is the analysis' own.
public enum PartHeader {
    static let magic = Array("SCTPART1".utf8)
    public static let size = 8 + 1 + 4 + 8
}

/// Little-endian encoding into a byte buffer.
public struct BinaryEncoder {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ value: Double) { append(value.bitPattern) }

    /// A UInt32 byte length and the UTF-8 bytes.
    public mutating func append(_ text: String) {
        append(UInt32(text.utf8.count))
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func header(kind: UInt8, shard: Int, rows: Int) {
        bytes.append(contentsOf: PartHeader.magic)
        append(kind)
        append(UInt32(shard))
        append(UInt64(rows))
    }
}

/// Reads what `BinaryEncoder` wrote; every read is bounds-checked so a damaged part is an error.
public struct BinaryDecoder {
    public let data: Data
    public let file: String
    public var offset = 0

    public init(_ data: Data, file: String) {
        self.data = data
        self.file = file
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset + size <= data.count else { throw AnalysisError("\(file): truncated part (at byte \(offset))") }
        let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
        offset += size
        return T(littleEndian: value)
    }

    public mutating func double() throws -> Double { Double(bitPattern: try read(UInt64.self)) }

    public mutating func string() throws -> String {
        let length = Int(try read(UInt32.self))
        guard offset + length <= data.count else { throw AnalysisError("\(file): truncated part (at byte \(offset))") }
        let text = String(decoding: data[data.startIndex + offset ..< data.startIndex + offset + length], as: UTF8.self)
        offset += length
        return text
    }

    /// Checks the magic, kind and shard; returns the row count.
    public mutating func header(kind: UInt8, shard: Int) throws -> Int {
        guard data.count >= PartHeader.size, Array(data.prefix(8)) == PartHeader.magic else {
            throw AnalysisError("\(file): not a sctrial-plan part")
        }
        offset = 8
        guard try read(UInt8.self) == kind else { throw AnalysisError("\(file): part of another analysis kind") }
        guard Int(try read(UInt32.self)) == shard else { throw AnalysisError("\(file): part of another shard") }
        return Int(try read(UInt64.self))
    }

    /// Every byte read: nothing trails the last row.
    public func finish() throws {
        guard offset == data.count else { throw AnalysisError("\(file): trailing bytes after the last row") }
    }
}
