import CHDF5
import Foundation

extension H5Reader {
    /// Each string of a 1-D string dataset as the bytes `readStringDataset` would make a String of
    /// (up to a NUL; invalid UTF-8 repaired), in order, without a String per element: what a hash
    /// of 10⁵-10⁶ cell names needs.
    ///
    /// A contiguous variable-length string dataset is read in place from the file mapped into
    /// memory, per the HDF5 file format: its elements (length, global heap collection address,
    /// object index) and the collections they point into. libhdf5 instead looks each element up
    /// in its heap cache, converts it and mallocs it (about 0.2 µs each), and a copy would
    /// first-touch fresh memory. Any other storage, or anything unexpected in the raw bytes, goes
    /// through libhdf5.
    func forEachStoredString(_ path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws(AnnDataError) {
        if try forEachHeapString(path, body) { return }
        for var string in try readStringDataset(path) {
            string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }

    /// The mapped path of `forEachStoredString`; false (nothing passed to `body`) when it does not
    /// apply. Also what `readStringDataset` checks a dataset with before libhdf5 reads it.
    func forEachHeapString(_ path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws(AnnDataError) -> Bool {
        let dataset = try openDataset(path)
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        let space = H5ID(H5Dget_space(dataset.id), close: H5Sclose)
        let creation = H5ID(H5Fget_create_plist(file.id), close: H5Pclose)
        var addressSize = 0, lengthSize = 0
        var userBlock: hsize_t = 0
        let offset = H5Dget_offset(dataset.id)
        let count = Int(H5Sget_simple_extent_npoints(space.id))
        guard H5Tget_class(type.id) == H5T_STRING, H5Tis_variable_str(type.id) > 0,
              H5Sget_simple_extent_ndims(space.id) == 1, count > 0, count < 1 << 40, offset < 1 << 62,
              H5Pget_sizes(creation.id, &addressSize, &lengthSize) >= 0, addressSize == 8, lengthSize == 8,
              H5Pget_userblock(creation.id, &userBlock) >= 0, userBlock == 0
        else { return false }
        let elementSize = 16
        // Every size below comes from the file: compared, never trusted in arithmetic that could wrap.
        guard H5Dget_storage_size(dataset.id) == UInt64(count * elementSize),
              let mapped = MappedFile(fileName), count * elementSize <= mapped.bytes.count - Int(offset)
        else { return false }
        defer { withExtendedLifetime(mapped) {} }
        let bytes = mapped.bytes
        let elements = UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<(Int(offset) + count * elementSize)])

        // Each element: length (4 bytes), collection address (8), object index (4). Every one is
        // checked before any reaches `body`. One that points at no heap object is damage, not a
        // layout we do not know: libhdf5 1.10 would read past its heap's object table with it.
        var collections: [Int: [Int]] = [:]
        var current = (address: -1, objects: [Int]())
        func object(_ element: Int) -> UnsafeRawBufferPointer? {
            let base = element * elementSize
            let length = Self.integer(elements, base, UInt32.self)
            guard length > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            let address = Self.integer(elements, base + 4, UInt64.self)
            if address != current.address {
                guard let objects = collections[address] ?? Self.heapObjects(bytes, at: address) else { return nil }
                collections[address] = objects
                current = (address, objects)
            }
            let index = Self.integer(elements, base + 12, UInt32.self)
            guard index < current.objects.count, current.objects[index] >= 0,
                  Self.integer(bytes, current.objects[index] - 8, UInt64.self) == length else { return nil }
            return UnsafeRawBufferPointer(rebasing: bytes[current.objects[index]..<(current.objects[index] + length)])
        }
        for element in 0..<count where object(element) == nil {
            throw fail(.corruptSparse, path, "string \(element)'s global heap reference matches no object in the file (damaged variable-length string)")
        }
        for element in 0..<count {
            let stored = object(element)!
            let text = stored.firstIndex(of: 0).map { UnsafeRawBufferPointer(rebasing: stored[..<$0]) } ?? stored
            guard text.contains(where: { $0 >= 0x80 }) else {
                body(text)
                continue
            }
            // Non-ASCII: as String(cString:) would repair it.
            var string = String(decoding: text, as: UTF8.self)
            string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
        return true
    }

    /// A little-endian field; a 64-bit value past Int.max reads as negative, which every caller
    /// refuses as an address or size.
    private static func integer<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ at: Int, _: T.Type) -> Int {
        precondition(at >= 0 && at <= bytes.count - MemoryLayout<T>.size)
        return Int(truncatingIfNeeded: T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self)))
    }

    /// File offsets of the data of the objects of the global heap collection at `address`, by
    /// index (-1: none): "GCOL", version 1, 3 reserved bytes, the collection's size; then per
    /// object its index (2 bytes), reference count (2), reserved (4), size (8) and data padded to
    /// 8 bytes, until index 0 (free space). Nil when the bytes do not hold together.
    private static func heapObjects(_ file: UnsafeRawBufferPointer, at address: Int) -> [Int]? {
        guard address >= 0, address <= file.count - 16, file[address..<(address + 4)].elementsEqual("GCOL".utf8),
              file[address + 4] == 1 else { return nil }
        let size = integer(file, address + 8, UInt64.self)
        guard size >= 16, size <= file.count - address else { return nil }
        let end = address + size
        var objects: [Int] = []
        var position = address + 16
        while position + 16 <= end {
            let index = integer(file, position, UInt16.self)
            let length = integer(file, position + 8, UInt64.self)
            guard index != 0 else { break }
            guard length >= 0, length <= end - position - 16 else { return nil }
            if index >= objects.count { objects += repeatElement(-1, count: index + 1 - objects.count) }
            objects[index] = position + 16
            position += 16 + (length + 7) / 8 * 8
        }
        return objects
    }
}

/// A whole file mapped read-only (pages come straight from the page cache), unmapped on release.
/// A file truncated while mapped faults (SIGBUS) instead of failing a read: only use it on files
/// already checked against their expected size, for a moment.
final class MappedFile {
    let bytes: UnsafeRawBufferPointer

    init?(_ path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size > 0,
              let base = mmap(nil, Int(status.st_size), PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED
        else { return nil }
        bytes = UnsafeRawBufferPointer(start: base, count: Int(status.st_size))
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) }
}
