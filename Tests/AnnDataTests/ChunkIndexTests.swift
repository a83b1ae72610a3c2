@testable import AnnData
import CHDF5
import Foundation
import Testing

/// `ChunkBTree` reads the chunk B-trees libhdf5 writes (object header versions 1 and 2, trees
/// of several levels) without a complaint, and names each kind of damage in them.
@Suite struct ChunkIndexTests {
    /// A file with one 1-D int32 dataset of `count` elements in chunks of 10: 500 chunks make a
    /// two-level tree (a chunk B-tree node holds at most 64). `latestHeader` asks libhdf5 for
    /// version-2 object headers ("OHDR") with the version-3 layout message the tree hangs from.
    struct Written {
        var bytes: [UInt8]
        let header: Int
    }

    static func write(latestHeader: Bool, count: Int = 5_000) throws -> Written {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("chunk-index-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let access = H5Pcreate(sc_h5p_file_access())
        defer { H5Pclose(access) }
        if latestHeader { H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V18) }
        let file = H5Fcreate(path, sc_h5f_acc_trunc(), sc_h5p_default(), access)
        try #require(file >= 0)
        var dims: [hsize_t] = [hsize_t(count)]
        var chunk: [hsize_t] = [10]
        let space = H5Screate_simple(1, &dims, nil)
        let creation = H5Pcreate(sc_h5p_dataset_create())
        H5Pset_chunk(creation, 1, &chunk)
        let dataset = H5Dcreate2(file, "values", sc_h5t_native_int32(), space, sc_h5p_default(), creation, sc_h5p_default())
        try #require(dataset >= 0)
        let values = (0..<Int32(count)).map { $0 }
        try #require(H5Dwrite(dataset, sc_h5t_native_int32(), sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), values) >= 0)
        var info = H5O_info_t()
        try #require(H5Oget_info2(dataset, &info, sc_h5o_info_basic()) >= 0)
        H5Dclose(dataset); H5Pclose(creation); H5Sclose(space); H5Fclose(file)
        return Written(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))), header: Int(info.addr))
    }

    /// File offsets of the chunk B-tree nodes ("TREE", type 1) at `level`.
    static func nodes(_ bytes: [UInt8], level: UInt8) -> [Int] {
        (0..<(bytes.count - 6)).filter { bytes[$0..<($0 + 4)].elementsEqual("TREE".utf8) && bytes[$0 + 4] == 1 && bytes[$0 + 5] == level }
    }

    static func damage(_ bytes: [UInt8], _ header: Int) -> String? {
        bytes.withUnsafeBytes { ChunkBTree.damage(in: $0, headerAt: header, rank: 1) }
    }

    static func store(_ value: UInt64, in bytes: inout [UInt8], at offset: Int) {
        for k in 0..<8 { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }

    // A key: chunk bytes (4), filter mask (4), offset per dimension (8 each, the element size last).
    static let keySize = 8 + 8 * 2

    @Test(arguments: [false, true])
    func libhdf5sTreesPass(latestHeader: Bool) throws {
        let written = try Self.write(latestHeader: latestHeader)
        #expect(Array(written.bytes[written.header..<(written.header + 4)]).elementsEqual("OHDR".utf8) == latestHeader)
        #expect(Self.nodes(written.bytes, level: 1).count == 1)
        #expect(Self.nodes(written.bytes, level: 0).count >= 8)
        #expect(Self.damage(written.bytes, written.header) == nil)
    }

    @Test(arguments: [false, true])
    func aKeyOffTheGridIsNamed(latestHeader: Bool) throws {
        var written = try Self.write(latestHeader: latestHeader)
        let leaf = Self.nodes(written.bytes, level: 0)[3]
        // Key 1 of the leaf (after key 0 and child 0): offset 10·k becomes 10·k + 1.
        let offset = leaf + 24 + Self.keySize + 8 + 8
        let stored = written.bytes[offset..<(offset + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        Self.store(stored + 1, in: &written.bytes, at: offset)
        #expect(Self.damage(written.bytes, written.header)
            == "chunk B-tree key 1 at \(leaf) has offset \(stored + 1) in dimension 0, not on the chunk grid (bad coordinate offset)")
    }

    @Test func aChildLoopingBackIsNamed() throws {
        var written = try Self.write(latestHeader: false)
        let root = Self.nodes(written.bytes, level: 1)[0]
        Self.store(UInt64(root), in: &written.bytes, at: root + 24 + Self.keySize)
        #expect(Self.damage(written.bytes, written.header) == "chunk B-tree node at \(root) is reached twice (the tree loops back on itself)")
    }

    @Test func aChunkPastTheEndIsNamed() throws {
        var written = try Self.write(latestHeader: false)
        let leaf = Self.nodes(written.bytes, level: 0)[0]
        Self.store(UInt64(written.bytes.count - 8), in: &written.bytes, at: leaf + 24 + Self.keySize)
        #expect(Self.damage(written.bytes, written.header) == "chunk 0 of B-tree node at \(leaf) lies outside the file (40 bytes at \(written.bytes.count - 8))")
    }

    @Test func aNodeThatIsNoNodeIsNamed() throws {
        var written = try Self.write(latestHeader: true)
        let leaf = Self.nodes(written.bytes, level: 0)[2]
        written.bytes[leaf] = UInt8(ascii: "X")
        #expect(Self.damage(written.bytes, written.header) == "chunk B-tree node at \(leaf) is not a chunk B-tree node")
    }
}
