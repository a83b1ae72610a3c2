/// One array job's share of a run: array task `t` runs shard `offset + t`. Every array starts at
/// task 0, because MaxArraySize bounds the largest index, not the count.
public struct SlurmArrayPart: Sendable, Hashable {
    /// The shard that array task 0 runs.
    public let offset: Int
    /// The array's task ids, all below the controller's MaxArraySize.
    public let indices: SlurmArrayIndices

    public init(offset: Int, indices: SlurmArrayIndices) {
        self.offset = offset
        self.indices = indices
    }

    /// The shards this array runs, ascending.
    public var shards: [Int] { indices.values.map { offset + $0 } }
}

/// Splits shards over as many arrays as MaxArraySize requires.
public enum SlurmArraySplit {
    /// Slurm's MaxArraySize when slurm.conf does not set it.
    public static let defaultMaxArraySize = 1001

    /// Shards 0..<shardCount as arrays 0-(M-1) with offsets 0, M, 2M, … (M = maxArraySize); the
    /// last array holds the remainder.
    public static func parts(shardCount: Int, maxArraySize: Int) throws(SlurmError) -> [SlurmArrayPart] {
        guard shardCount >= 0 else { throw .invalidRequest("shard count \(shardCount) is negative") }
        guard maxArraySize >= 1 else { throw .invalidRequest("MaxArraySize \(maxArraySize) must be at least 1") }
        return stride(from: 0, to: shardCount, by: maxArraySize).map { offset in
            SlurmArrayPart(offset: offset, indices: .range(0...(min(shardCount, offset + maxArraySize) - 1 - offset)))
        }
    }

    /// Any set of shards (failed ones to retry, say) as few arrays as possible: each array starts
    /// at its lowest shard and takes every shard below that plus MaxArraySize, as an index list.
    public static func parts(shards: [Int], maxArraySize: Int) throws(SlurmError) -> [SlurmArrayPart] {
        guard maxArraySize >= 1 else { throw .invalidRequest("MaxArraySize \(maxArraySize) must be at least 1") }
        let sorted = Array(Set(shards)).sorted()
        if let negative = sorted.first, negative < 0 { throw .invalidRequest("shard \(negative) is negative") }
        var result: [SlurmArrayPart] = []
        var rest = sorted[...]
        while let offset = rest.first {
            let members = rest.prefix { $0 < offset + maxArraySize }
            rest = rest.dropFirst(members.count)
            let indices = members.map { $0 - offset }
            let contiguous = indices.last == indices.count - 1
            result.append(SlurmArrayPart(offset: offset, indices: contiguous ? .range(0...(indices.count - 1)) : .list(indices)))
        }
        return result
    }
}
