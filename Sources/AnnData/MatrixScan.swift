import Foundation

/// What one full pass over a matrix found: the checks a user wants before spending cluster time
/// (every index in range, every value finite) and the facts analyses depend on (non-negative,
/// integer-valued counts or log-normalised values).
public struct MatrixScan: Sendable, Codable, Equatable {
    public var storedEntries = 0
    public var nonFinite = 0
    public var negative = 0
    public var nonInteger = 0
    public var minimum = Double.infinity
    public var maximum = -Double.infinity
    public var sum = 0.0
    public var blocks = 0
    public var bytesRead = 0
    public var seconds = 0.0

    enum CodingKeys: String, CodingKey {
        case sum, minimum, maximum, blocks, seconds
        case storedEntries = "stored_entries", nonFinite = "non_finite", negative
        case nonInteger = "non_integer", bytesRead = "bytes_read"
    }

    public init() {}

    /// Streams the whole element once with the reader's budget.
    public static func scan(_ matrix: MatrixReader) throws(AnnDataError) -> MatrixScan {
        let clock = ContinuousClock.now
        var result = MatrixScan()
        var blocks = try matrix.blocks()
        let valueBytes = matrix.info.dtype.byteSize
        let indexBytes = matrix.info.indexDType?.byteSize ?? 0
        while let slab = try blocks.next() {
            result.blocks += 1
            switch slab {
            case .sparse(let s):
                result.add(s.values)
                result.bytesRead += s.nnz * (valueBytes + indexBytes)
            case .dense(let d):
                result.add(d.values)
                result.bytesRead += d.values.count * valueBytes
            }
        }
        if matrix.info.format != .dense { result.bytesRead += (matrix.info.majorCount + 1) * 8 }
        let elapsed = ContinuousClock.now - clock
        result.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        if result.storedEntries == 0 { result.minimum = 0; result.maximum = 0 }
        return result
    }

    private mutating func add(_ values: [Double]) {
        storedEntries += values.count
        var localSum = 0.0, low = minimum, high = maximum
        var nonFiniteCount = 0, negativeCount = 0, fractionalCount = 0
        values.withUnsafeBufferPointer { buffer in
            for value in buffer {
                // Branch-light so the loop stays a small fraction of the read: non-finite values
                // are counted and kept out of the sum; a value is fractional when rounding it to
                // the nearest integer (via 2^52) changes it, and every |x| ≥ 2^52 is an integer.
                guard value.isFinite else { nonFiniteCount += 1; continue }
                localSum += value
                low = Swift.min(low, value)
                high = Swift.max(high, value)
                negativeCount &+= value < 0 ? 1 : 0
                let magnitude = Swift.abs(value)
                fractionalCount &+= magnitude < 0x1p52 && (magnitude + 0x1p52) - 0x1p52 != magnitude ? 1 : 0
            }
        }
        sum += localSum
        minimum = low
        maximum = high
        nonFinite += nonFiniteCount
        negative += negativeCount
        nonInteger += fractionalCount
    }
}
