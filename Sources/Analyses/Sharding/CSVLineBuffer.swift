import Foundation

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
