import CHDF5

/// The keys of a chunked dataset's version-1 B-tree, read from the file mapped into memory.
///
/// Each key of a chunk B-tree holds a chunk's coordinates, and they must lie on the chunk
/// grid. libhdf5 1.10 never checks this (HDF5 2.0 does, "bad coordinate offset"), and the chunk
/// API only shows the keys in front of a chunk, not the boundary key that closes each node.
/// So the tree is walked here, from the layout message of the dataset's object header (HDF5
/// file format: object header versions 1 and 2, data layout message version 3). Other layouts
/// (version 4's indexes, 4-byte addresses) are not read: nil, nothing checked.
struct ChunkBTree {
    /// A problem found, in words; nil when the keys hold together or the layout is not read here.
    static func damage(in file: UnsafeRawBufferPointer, headerAt header: Int, rank: Int) -> String? {
        guard let layout = layoutMessage(file, header), let tree = chunkIndex(file, layout, rank: rank) else { return nil }
        var visited: Set<Int> = []
        return node(file, at: tree.root, chunk: tree.chunk, level: nil, depth: 0, visited: &visited)
    }

    private struct Index {
        let root: Int
        /// Chunk dimensions with the element size last, as the keys store offsets.
        let chunk: [Int]
    }

    /// Data of the layout message (type 8) of the object header at `address`, following
    /// continuation messages; nil if the header is not one this reads.
    private static func layoutMessage(_ file: UnsafeRawBufferPointer, _ address: Int) -> UnsafeRawBufferPointer? {
        guard address >= 0, address <= file.count - 16 else { return nil }
        var blocks: [(start: Int, end: Int)] = []
        let version2 = file[address..<(address + 4)].elementsEqual("OHDR".utf8)
        if version2 {
            guard file[address + 4] == 2 else { return nil }
            let flags = file[address + 5]
            var position = address + 6 + (flags & 0x20 != 0 ? 16 : 0) + (flags & 0x10 != 0 ? 4 : 0)
            let sizeBytes = 1 << Int(flags & 0x03)
            guard position <= file.count - sizeBytes else { return nil }
            let size = file.littleEndian(position, bytes: sizeBytes)
            position += sizeBytes
            // The block ends with a 4-byte checksum.
            guard size >= 4, size <= file.count - position else { return nil }
            blocks.append((position, position + size - 4))
        } else {
            guard file[address] == 1 else { return nil }
            let size = file.littleEndian(address + 8, bytes: 4)
            guard size <= file.count - address - 16 else { return nil }
            blocks.append((address + 16, address + 16 + size))
        }
        var next = 0
        while next < blocks.count, blocks.count <= 1024 {
            var (position, end) = blocks[next]
            next += 1
            while true {
                let prefix = version2 ? 4 : 8
                guard position <= end - prefix else { break }
                let type = version2 ? Int(file[position]) : file.littleEndian(position, bytes: 2)
                let size = file.littleEndian(position + (version2 ? 1 : 2), bytes: 2)
                let flags = file[position + (version2 ? 3 : 4)]
                let creationOrder = version2 && flags & 0x04 != 0 ? 2 : 0
                let data = position + prefix + creationOrder
                guard size <= end - data else { return nil }
                if type == 8 { return UnsafeRawBufferPointer(rebasing: file[data..<(data + size)]) }
                if type == 0x10, size >= 16 {
                    let start = file.littleEndian(data, bytes: 8), length = file.littleEndian(data + 8, bytes: 8)
                    guard start >= 0, length >= 0, length <= file.count - start else { return nil }
                    if version2 {
                        guard length >= 8, file[start..<(start + 4)].elementsEqual("OCHK".utf8) else { return nil }
                        blocks.append((start + 4, start + length - 4))
                    } else {
                        blocks.append((start, start + length))
                    }
                }
                position = data + size
            }
        }
        return nil
    }

    /// The B-tree address and chunk dimensions of a version-3 chunked layout.
    private static func chunkIndex(_ file: UnsafeRawBufferPointer, _ layout: UnsafeRawBufferPointer, rank: Int) -> Index? {
        guard layout.count >= 3, layout[0] == 3, layout[1] == 2 else { return nil }
        let dimensions = Int(layout[2])
        guard dimensions == rank + 1, layout.count >= 3 + 8 + 4 * dimensions else { return nil }
        let root = layout.littleEndian(3, bytes: 8)
        let chunk = (0..<dimensions).map { layout.littleEndian(11 + 4 * $0, bytes: 4) }
        guard chunk.allSatisfy({ $0 > 0 }) else { return nil }
        return Index(root: root, chunk: chunk)
    }

    /// Checks one node and the nodes under it: signature, type 1 (chunks), level one less than
    /// its parent's, every key's offsets multiples of the chunk dimensions.
    private static func node(_ file: UnsafeRawBufferPointer, at address: Int, chunk: [Int], level expected: Int?,
                             depth: Int, visited: inout Set<Int>) -> String? {
        // An undefined address: the dataset has no chunk yet.
        if address == -1 && depth == 0 { return nil }
        guard depth < 64, visited.insert(address).inserted else { return "chunk B-tree node at \(address) is reached twice (the tree loops back on itself)" }
        guard address >= 0, address <= file.count - 24, file[address..<(address + 4)].elementsEqual("TREE".utf8),
              file[address + 4] == 1 else { return "chunk B-tree node at \(address) is not a chunk B-tree node" }
        let level = Int(file[address + 5])
        if let expected, level != expected { return "chunk B-tree node at \(address) has level \(level), its parent expects \(expected)" }
        let entries = file.littleEndian(address + 6, bytes: 2)
        let keySize = 8 + 8 * chunk.count
        let (size, overflow) = (entries * (keySize + 8) + keySize).addingReportingOverflow(24)
        guard !overflow, size <= file.count - address else { return "chunk B-tree node at \(address) runs past the end of the file" }
        var position = address + 24
        for entry in 0...entries {
            for (dimension, extent) in chunk.enumerated() {
                let offset = file.littleEndian(position + 8 + 8 * dimension, bytes: 8)
                guard offset >= 0, offset % extent == 0 else {
                    return "chunk B-tree key \(entry) at \(address) has offset \(offset) in dimension \(dimension), not on the chunk grid (bad coordinate offset)"
                }
            }
            let storedBytes = file.littleEndian(position, bytes: 4)
            position += keySize
            guard entry < entries else { break }
            let child = file.littleEndian(position, bytes: 8)
            if level > 0 {
                if let problem = node(file, at: child, chunk: chunk, level: level - 1, depth: depth + 1, visited: &visited) { return problem }
            } else if child < 0 || storedBytes > file.count - child {
                return "chunk \(entry) of B-tree node at \(address) lies outside the file (\(storedBytes) bytes at \(child))"
            }
            position += 8
        }
        return nil
    }
}
