import CHDF5
import Foundation

/// Variable-length strings as the file stores them: per element a 4-byte length and a global
/// heap ID (an 8-byte collection address and a 4-byte object index), the string's bytes being
/// that object of that collection (HDF5 file format, "Global Heap" and "Variable-Length" types).
///
/// libhdf5 1.10 trusts these references: one naming an object its collection does not have
/// makes it read past the collection's object table (garbage, or a segfault in `H5HG_read`),
/// and a length that disagrees with the object's size goes unnoticed (HDF5 2.0 checks both).
/// So every reference is checked here, against the collection parsed from the file mapped into
/// memory, before libhdf5 or `body` sees a string; the checked strings are then read in place,
/// without libhdf5's per-element heap lookup and malloc (about 0.2 µs each).
enum HeapReference {
    static let size = 16

    /// A memory type that libhdf5 "converts" a variable-length string into by leaving the
    /// stored reference as it is: reading a dataset or an attribute as this type gives the
    /// references, whatever the storage (contiguous, compact, chunked through any filter).
    /// Nil if libhdf5 refused the conversion's registration.
    static let storedType: hid_t? = {
        let source = H5Tcopy(sc_h5t_c_s1())
        defer { H5Tclose(source) }
        H5Tset_size(source, sc_h5t_variable())
        let opaque = H5Tcreate(H5T_OPAQUE, size)
        guard opaque >= 0, H5Tset_tag(opaque, "stored variable-length string reference") >= 0 else { return nil }
        let keepStoredBytes: H5T_conv_t = { source, destination, data, _, _, _, _, _, _ in
            guard let data else { return -1 }
            if data.pointee.command == H5T_CONV_INIT {
                // Only a variable-length string with 8-byte addresses (16 bytes stored) into
                // this type: anything else has no conversion and the read fails.
                guard H5Tis_variable_str(source) > 0, H5Tget_class(destination) == H5T_OPAQUE,
                      H5Tget_size(source) == size, H5Tget_size(destination) == size else { return -1 }
                data.pointee.need_bkg = H5T_BKG_NO
            }
            // The conversion buffer already holds the stored bytes, 16 per element.
            return 0
        }
        guard H5Tregister(H5T_PERS_SOFT, "stored variable-length string reference", source, opaque, keepStoredBytes) >= 0 else {
            H5Tclose(opaque)
            return nil
        }
        return opaque
    }()
}

/// The strings of one dataset or attribute, every reference checked, read from the mapped file.
struct CheckedHeapStrings {
    private let mapped: MappedFile
    /// File offset and length of each string's stored bytes.
    private let spans: [(start: Int, count: Int)]

    /// Resolves `references` (`count` × 16 stored bytes) against the global heap of the file
    /// mapped as `mapped`, whose addresses start at `base` (the user block's size). The first
    /// element whose reference is damaged throws `damaged(element, what is wrong)`.
    init(mapped: MappedFile, base: Int, references: UnsafeRawBufferPointer, count: Int,
         damaged: (Int, String) -> AnnDataError) throws(AnnDataError) {
        self.mapped = mapped
        let bytes = mapped.bytes
        var collections: [Int: [Int]] = [:]
        var current = (address: -1, objects: [Int]())
        var spans: [(start: Int, count: Int)] = []
        spans.reserveCapacity(count)
        for element in 0..<count {
            let at = element * HeapReference.size
            let length = references.littleEndian(at, bytes: 4)
            let stored = references.littleEndian(at + 4, bytes: 8)
            let index = references.littleEndian(at + 12, bytes: 4)
            // Address 0 is libhdf5's empty string; any other reference names an object.
            if stored == 0 {
                guard length == 0 else {
                    throw damaged(element, "has length \(length) but no global heap object (damaged variable-length string)")
                }
                spans.append((0, 0))
                continue
            }
            let (address, overflow) = stored.addingReportingOverflow(base)
            if address != current.address {
                guard !overflow, let objects = collections[address] ?? Self.heapObjects(bytes, at: address) else {
                    throw damaged(element, "points at a global heap collection that is missing or damaged (address \(stored); damaged variable-length string)")
                }
                collections[address] = objects
                current = (address, objects)
            }
            guard index < current.objects.count, current.objects[index] >= 0 else {
                throw damaged(element, "names object \(index), which its global heap collection (address \(stored)) does not hold (damaged variable-length string)")
            }
            let objectSize = bytes.littleEndian(current.objects[index] - 8, bytes: 8)
            guard objectSize == length else {
                throw damaged(element, "has length \(length) but its global heap object holds \(objectSize) bytes (damaged variable-length string)")
            }
            spans.append((current.objects[index], length))
        }
        self.spans = spans
    }

    var count: Int { spans.count }

    /// Each string's bytes as `String(cString:)` would make a String of them: up to a NUL,
    /// invalid UTF-8 repaired.
    func forEach(upTo end: Int? = nil, _ body: (UnsafeRawBufferPointer) -> Void) {
        withExtendedLifetime(mapped) {
            for span in spans.prefix(end ?? spans.count) {
                let stored = UnsafeRawBufferPointer(rebasing: mapped.bytes[span.start..<(span.start + span.count)])
                let text = stored.firstIndex(of: 0).map { UnsafeRawBufferPointer(rebasing: stored[..<$0]) } ?? stored
                guard text.contains(where: { $0 >= 0x80 }) else {
                    body(text)
                    continue
                }
                var string = String(decoding: text, as: UTF8.self)
                string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
            }
        }
    }

    var strings: [String] { strings(upTo: count) }

    func strings(upTo end: Int) -> [String] {
        var strings: [String] = []
        strings.reserveCapacity(end)
        forEach(upTo: end) { strings.append(String(decoding: $0, as: UTF8.self)) }
        return strings
    }

    /// File offsets of the data of the objects of the global heap collection at `address`, by
    /// index (-1: none): "GCOL", version 1, 3 reserved bytes, the collection's size; then per
    /// object its index (2 bytes), reference count (2), reserved (4), size (8) and data padded to
    /// 8 bytes, until index 0 (free space). Nil when the bytes do not hold together.
    private static func heapObjects(_ file: UnsafeRawBufferPointer, at address: Int) -> [Int]? {
        guard address >= 0, address <= file.count - 16, file[address..<(address + 4)].elementsEqual("GCOL".utf8),
              file[address + 4] == 1 else { return nil }
        let size = file.littleEndian(address + 8, bytes: 8)
        guard size >= 16, size <= file.count - address else { return nil }
        let end = address + size
        var objects: [Int] = []
        var position = address + 16
        while position + 16 <= end {
            let index = file.littleEndian(position, bytes: 2)
            let length = file.littleEndian(position + 8, bytes: 8)
            guard index != 0 else { break }
            guard length >= 0, length <= end - position - 16 else { return nil }
            if index >= objects.count { objects += repeatElement(-1, count: index + 1 - objects.count) }
            // Two objects with one index: the table is damaged.
            guard objects[index] < 0 else { return nil }
            objects[index] = position + 16
            position += 16 + (length + 7) / 8 * 8
        }
        return objects
    }
}

extension H5Reader {
    /// Each string of a string dataset, in order, as the bytes `readStringDataset` makes a String
    /// of, without a String per element: what a hash of 10⁵-10⁶ cell names needs.
    func forEachStoredString(_ path: String, _ body: (UnsafeRawBufferPointer) -> Void) throws(AnnDataError) {
        if let strings = try checkedHeapStrings(path) {
            strings.forEach(body)
            return
        }
        for var string in try libhdf5Strings(path) {
            string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A variable-length string dataset's strings, every heap reference checked; nil when the
    /// dataset holds no such strings, or the file's layout is not the one `HeapReference` reads
    /// (4-byte addresses): libhdf5 then reads it unchecked.
    func checkedHeapStrings(_ path: String) throws(AnnDataError) -> CheckedHeapStrings? {
        let dataset = try openDataset(path)
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        guard H5Tget_class(type.id) == H5T_STRING, H5Tis_variable_str(type.id) > 0 else { return nil }
        // A missing filter is named as for numbers, not as libhdf5's plugin error.
        try requireFilters(datasetInfo(path))
        let count = try extent(of: dataset.id, path).reduce(1, *)
        try checkStored(dataset.id, path, count: count)
        let space = H5ID(H5Dget_space(dataset.id), close: H5Sclose)
        return try checkedHeapStrings(count: count, fileType: type.id, what: path, read: { memoryType, buffer in
            H5Dread(dataset.id, memoryType, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), buffer)
        }, firstCount: 1, readFirst: { memoryType, buffer in
            // The first element, by its place in each dimension (all 0).
            var start = [hsize_t](repeating: 0, count: 32), one = [hsize_t](repeating: 1, count: 32), single: hsize_t = 1
            let selection = H5ID(H5Scopy(space.id), close: H5Sclose)
            let memory = H5ID(H5Screate_simple(1, &single, nil), close: H5Sclose)
            guard H5Sselect_hyperslab(selection.id, H5S_SELECT_SET, &start, nil, &one, nil) >= 0 else { return -1 }
            return H5Dread(dataset.id, memoryType, memory.id, selection.id, sc_h5p_default(), buffer)
        })
    }

    /// The checked strings of `count` variable-length strings of `fileType` that `read` reads in
    /// a given memory type (a dataset's or an attribute's); `what` names them in errors. Once
    /// their references are checked, `readFirst` reads the first `firstCount` (an attribute: all)
    /// through libhdf5's own conversion to C strings, which must give the same strings: with a
    /// damaged datatype (its character type, say) it gives others, or none.
    func checkedHeapStrings(count: Int, fileType: hid_t, what: String, read: (hid_t, UnsafeMutableRawPointer) -> herr_t,
                            firstCount: Int, readFirst: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws(AnnDataError) -> CheckedHeapStrings? {
        guard let storedType = HeapReference.storedType, let userBlock = userBlockOfEightByteAddressing(),
              let mapped = MappedFile(fileName) else { return nil }
        // `count` was checked against the stored extent by the caller.
        var references = [UInt8](repeating: 0, count: max(1, count * HeapReference.size))
        let status = count == 0 ? 0 : references.withUnsafeMutableBytes { read(storedType, $0.baseAddress!) }
        guard status >= 0 else {
            throw fail(.unreadable, what, "strings cannot be read (\(Self.errorStackMessage()))")
        }
        let checked: Result<CheckedHeapStrings, AnnDataError> = references.withUnsafeBytes { stored in
            Result { () throws(AnnDataError) in
                try CheckedHeapStrings(mapped: mapped, base: userBlock, references: stored, count: count) { element, problem in
                    fail(.corruptSparse, what, "string \(element)'s global heap reference \(problem)")
                }
            }
        }
        let strings = try checked.get()
        guard count > 0 else { return strings }
        let cString = H5ID(H5Tcopy(sc_h5t_c_s1()), close: H5Tclose)
        H5Tset_size(cString.id, sc_h5t_variable())
        H5Tset_cset(cString.id, H5Tget_cset(fileType))
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: min(count, firstCount))
        let converted = pointers.withUnsafeMutableBytes { readFirst(cString.id, $0.baseAddress!) }
        defer { for pointer in pointers { free(pointer) } }
        guard converted >= 0 else { throw fail(.unreadable, what, "strings cannot be read (\(Self.errorStackMessage()))") }
        let first = strings.strings(upTo: pointers.count)
        for (element, pointer) in pointers.enumerated() where (pointer.map { String(cString: $0) } ?? "") != first[element] {
            throw fail(.corruptSparse, what, "string \(element) reads as \"\(pointer.map { String(cString: $0) } ?? "")\" through its datatype but \"\(first[element])\" from the heap (damaged datatype)")
        }
        return strings
    }
}

extension H5Reader {
    /// The size of the file's user block (where its addresses start) when addresses and lengths
    /// are 8 bytes, as every file h5py and anndata write: the layout our own readers of the file
    /// format (`CheckedHeapStrings`, `ChunkBTree`) know. Nil for any other.
    func userBlockOfEightByteAddressing() -> Int? {
        let creation = H5ID(H5Fget_create_plist(file.id), close: H5Pclose)
        var addressSize = 0, lengthSize = 0
        var userBlock: hsize_t = 0
        guard H5Pget_sizes(creation.id, &addressSize, &lengthSize) >= 0, addressSize == 8, lengthSize == 8,
              H5Pget_userblock(creation.id, &userBlock) >= 0, userBlock < 1 << 40 else { return nil }
        return Int(userBlock)
    }
}

extension UnsafeRawBufferPointer {
    /// A little-endian unsigned field of 1 to 8 bytes of the file format; past Int.max it reads
    /// as -1, which every caller refuses as an address or a size.
    func littleEndian(_ at: Int, bytes count: Int) -> Int {
        precondition(at >= 0 && count <= 8 && at <= self.count - count)
        let value: UInt64
        switch count {
        // One load for the widths the references use (millions per index).
        case 8: value = UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self))
        case 4: value = UInt64(UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        default: value = (0..<count).reduce(0) { $0 | UInt64(self[at + $1]) << (8 * UInt64($1)) }
        }
        return value > UInt64(Int.max) ? -1 : Int(value)
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
