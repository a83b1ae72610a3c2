import CHDF5
import Foundation

/// An HDF5 identifier that closes itself. HDF5 ids are process-global integers; keeping each in a
/// class ties its lifetime to Swift's and makes leaks impossible on error paths.
final class H5ID {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }

    deinit { _ = close(id) }
}

/// The numeric element types that AnnData writes.
public enum ElementType: String, Sendable, Codable, CaseIterable {
    case int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, bool

    var isInteger: Bool { ![.float32, .float64, .bool].contains(self) }
    var byteSize: Int {
        switch self {
        case .int8, .uint8, .bool: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float32: 4
        case .int64, .uint64, .float64: 8
        }
    }
}

/// Reads from one open HDF5 file. Not thread-safe (Debian's libhdf5 is built without thread
/// safety), so it is deliberately not `Sendable`: one reader per thread of I/O.
final class H5Reader {
    let file: H5ID
    let fileName: String

    private static let configureLibraries: Void = {
        // libhdf5 prints its error stack to stderr by default; we report errors ourselves.
        H5Eset_auto2(sc_h5e_default(), nil, nil)
        // Fresh kernel-zeroed mappings for every block were half the time of a full pass.
        sc_reuse_freed_blocks()
        // lzf is not among libhdf5's filters; blosc comes from Debian's plugin, which libhdf5
        // loads from its plugin directory when a dataset needs it.
        _ = LZFFilter.registered
        // Reading variable-length strings' stored references (StoredStrings.swift).
        _ = HeapReference.storedType
    }()

    init(path: String) throws(AnnDataError) {
        _ = Self.configureLibraries
        fileName = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AnnDataError(.fileMissing, file: path, path: "", "no such file")
        }
        if isDirectory.boolValue { throw Self.directoryError(path) }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw AnnDataError(.unreadable, file: path, path: "", "file is not readable (permissions)")
        }
        if H5Fis_hdf5(path) <= 0 {
            throw AnnDataError(.notHDF5, file: path, path: "", "not an HDF5 file (no HDF5 signature)")
        }
        // No file locks for reading: a read-only open needs none, and parallel filesystems
        // without flock support (common on clusters) would otherwise refuse the file.
        let access = H5ID(H5Pcreate(sc_h5p_file_access()), close: H5Pclose)
        H5Pset_file_locking(access.id, false, true)
        let id = H5Fopen(path, sc_h5f_acc_rdonly(), access.id)
        guard id >= 0 else {
            let stack = H5Reader.errorStackMessage()
            let detail = stack.lowercased().contains("truncated") ? "truncated HDF5 file (\(stack))" : "cannot open HDF5 file (\(stack))"
            throw AnnDataError(.notHDF5, file: path, path: "/", detail)
        }
        file = H5ID(id, close: H5Fclose)
    }

    /// A directory is no .h5ad; a Zarr store (anndata's other format, `.zgroup`/`.zattrs` in v2,
    /// `zarr.json` in v3) is named as such, with the conversion that makes it one.
    static func directoryError(_ path: String) -> AnnDataError {
        let markers = [".zgroup", ".zattrs", "zarr.json"]
        let isZarr = markers.contains { FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent($0)) }
        guard isZarr else {
            return AnnDataError(.notHDF5, file: path, path: "", "is a directory, not an .h5ad file")
        }
        return AnnDataError(.zarrStore, file: path, path: "",
                            "is a Zarr store; sctrial-plan reads .h5ad: convert with `anndata.read_zarr(\"\(path)\").write_h5ad(\"\((path as NSString).deletingPathExtension).h5ad\")`")
    }

    func fail(_ kind: AnnDataError.Kind, _ path: String, _ detail: String) -> AnnDataError {
        AnnDataError(kind, file: fileName, path: path, detail)
    }

    /// The innermost and outermost messages of libhdf5's current error stack, for error details.
    static func errorStackMessage() -> String {
        final class Collector { var messages: [String] = [] }
        let collector = Collector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        H5Ewalk2(sc_h5e_default(), H5E_WALK_DOWNWARD, { _, error, context in
            guard let error, let context else { return 0 }
            let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
            if let desc = error.pointee.desc { collector.messages.append(String(cString: desc)) }
            return 0
        }, context)
        H5Eclear2(sc_h5e_default())
        let unique = collector.messages.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return unique.suffix(2).joined(separator: ": ")
    }

    // MARK: - Objects

    enum ObjectKind { case group, dataset, other }

    func exists(_ path: String) -> Bool {
        FileProbe.note(path)
        if path == "/" { return true }
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if H5Lexists(file.id, prefix, sc_h5p_default()) <= 0 { return false }
        }
        return H5Oexists_by_name(file.id, path, sc_h5p_default()) > 0
    }

    func kind(of path: String) -> ObjectKind? {
        guard exists(path) else { return nil }
        var info = H5O_info_t()
        guard H5Oget_info_by_name2(file.id, path, &info, UInt32(H5O_INFO_BASIC), sc_h5p_default()) >= 0 else { return nil }
        switch info.type {
        case H5O_TYPE_GROUP: return .group
        case H5O_TYPE_DATASET: return .dataset
        default: return .other
        }
    }

    /// Member names of a group, in creation order where tracked, else name order (HDF5's default).
    func members(of path: String) throws(AnnDataError) -> [String] {
        let group = try openGroup(path)
        final class Names { var list: [String] = [] }
        let names = Names()
        var index: hsize_t = 0
        let status = H5Literate(group.id, H5_INDEX_NAME, H5_ITER_INC, &index, { _, name, _, context in
            guard let name, let context else { return 0 }
            Unmanaged<Names>.fromOpaque(context).takeUnretainedValue().list.append(String(cString: name))
            return 0
        }, Unmanaged.passUnretained(names).toOpaque())
        guard status >= 0 else { throw fail(.unreadable, path, "cannot list group (\(Self.errorStackMessage()))") }
        return names.list
    }

    func openGroup(_ path: String) throws(AnnDataError) -> H5ID {
        FileProbe.note(path)
        let id = H5Gopen2(file.id, path, sc_h5p_default())
        guard id >= 0 else { throw fail(.missingElement, path, "group cannot be opened (\(Self.errorStackMessage()))") }
        return H5ID(id, close: H5Gclose)
    }

    func openDataset(_ path: String) throws(AnnDataError) -> H5ID {
        FileProbe.note(path)
        let id = H5Dopen2(file.id, path, sc_h5p_default())
        guard id >= 0 else { throw fail(.missingElement, path, "dataset cannot be opened (\(Self.errorStackMessage()))") }
        return H5ID(id, close: H5Dclose)
    }

    // MARK: - Attributes

    func hasAttribute(_ path: String, _ name: String) -> Bool {
        FileProbe.note(path)
        return H5Aexists_by_name(file.id, path, name, sc_h5p_default()) > 0
    }

    func openAttribute(_ path: String, _ name: String) throws(AnnDataError) -> H5ID {
        FileProbe.note(path)
        let id = H5Aopen_by_name(file.id, path, name, sc_h5p_default(), sc_h5p_default())
        guard id >= 0 else { throw fail(.missingElement, path, "attribute '\(name)' cannot be opened") }
        return H5ID(id, close: H5Aclose)
    }

    /// A string attribute (variable- or fixed-length, scalar or one-element array); nil if absent.
    func stringAttribute(_ path: String, _ name: String) throws(AnnDataError) -> String? {
        guard hasAttribute(path, name) else { return nil }
        let strings = try stringArrayAttribute(path, name)
        guard strings.count == 1 else { throw fail(.wrongType, path, "attribute '\(name)' should be one string, found \(strings.count)") }
        return strings[0]
    }

    /// A string-array attribute such as `column-order`. An empty attribute of any type is `[]`
    /// (anndata writes an empty `column-order` as an empty float array).
    func stringArrayAttribute(_ path: String, _ name: String) throws(AnnDataError) -> [String] {
        let attribute = try openAttribute(path, name)
        let count = try attributeCount(attribute.id, path, name)
        if count == 0 { return [] }
        let type = H5ID(H5Aget_type(attribute.id), close: H5Tclose)
        guard H5Tget_class(type.id) == H5T_STRING else {
            throw fail(.wrongType, path, "attribute '\(name)' is not a string")
        }
        if H5Tis_variable_str(type.id) > 0,
           let strings = try checkedHeapStrings(count: count, fileType: type.id, what: "\(path)@\(name)", read: { H5Aread(attribute.id, $0, $1) },
                                                 firstCount: count, readFirst: { H5Aread(attribute.id, $0, $1) }) {
            return strings.strings
        }
        return try readStrings(count: count, fileType: type.id, what: "\(path)@\(name)") { memType, buffer in
            H5Aread(attribute.id, memType, buffer)
        }
    }

    /// An integer-valued attribute array (`shape`, `h5sparse_shape`, an `ordered` flag stored as a
    /// numpy bool enum); nil if absent.
    func integerArrayAttribute(_ path: String, _ name: String) throws(AnnDataError) -> [Int]? {
        guard hasAttribute(path, name) else { return nil }
        let attribute = try openAttribute(path, name)
        let count = try attributeCount(attribute.id, path, name)
        let type = H5ID(H5Aget_type(attribute.id), close: H5Tclose)
        let typeClass = H5Tget_class(type.id)
        if typeClass == H5T_ENUM || typeClass == H5T_INTEGER {
            // Read in the attribute's own layout and widen: HDF5 cannot convert enum to integer.
            let size = H5Tget_size(type.id)
            guard (1...8).contains(size) else { throw fail(.wrongType, path, "attribute '\(name)' has \(size)-byte integers") }
            let signed = typeClass == H5T_INTEGER ? H5Tget_sign(type.id) == H5T_SGN_2 : true
            var raw = [UInt8](repeating: 0, count: max(1, count * size))
            let status = raw.withUnsafeMutableBytes { H5Aread(attribute.id, type.id, $0.baseAddress) }
            guard status >= 0 else { throw fail(.unreadable, path, "attribute '\(name)' cannot be read") }
            return (0..<count).map { Self.integer(from: raw, at: $0 * size, size: size, signed: signed) }
        }
        if typeClass == H5T_FLOAT {
            var values = [Double](repeating: 0, count: count)
            let status = values.withUnsafeMutableBytes { H5Aread(attribute.id, sc_h5t_native_double(), $0.baseAddress) }
            guard status >= 0 else { throw fail(.unreadable, path, "attribute '\(name)' cannot be read") }
            guard values.allSatisfy({ $0 == $0.rounded() && abs($0) < 9e15 }) else {
                throw fail(.wrongType, path, "attribute '\(name)' should hold integers")
            }
            return values.map { Int($0) }
        }
        throw fail(.wrongType, path, "attribute '\(name)' is not numeric")
    }

    /// Elements of an attribute: the attributes anndata writes hold a few (a shape, a column
    /// order); a damaged dataspace claiming millions is refused before anything is allocated.
    private func attributeCount(_ attribute: hid_t, _ path: String, _ name: String) throws(AnnDataError) -> Int {
        let space = H5ID(H5Aget_space(attribute), close: H5Sclose)
        let count = Int(H5Sget_simple_extent_npoints(space.id))
        guard count >= 0, count <= 1 << 22 else {
            throw fail(.unreadable, path, "attribute '\(name)' cannot be read (dataspace of \(count) elements)")
        }
        return count
    }

    private static func integer(from bytes: [UInt8], at offset: Int, size: Int, signed: Bool) -> Int {
        var value: UInt64 = 0
        for i in 0..<size { value |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        if signed && size < 8 && value & (1 << (8 * UInt64(size) - 1)) != 0 {
            value |= ~UInt64(0) << (8 * UInt64(size))
        }
        return Int(truncatingIfNeeded: value)
    }

    /// The object an object-reference attribute points to (legacy categoricals: `categories`
    /// refers to `__categories/<column>`), as a path.
    func referencedPath(_ path: String, _ name: String) throws(AnnDataError) -> String? {
        guard hasAttribute(path, name) else { return nil }
        let attribute = try openAttribute(path, name)
        let type = H5ID(H5Aget_type(attribute.id), close: H5Tclose)
        guard H5Tget_class(type.id) == H5T_REFERENCE else { return nil }
        var reference = hobj_ref_t()
        guard H5Aread(attribute.id, sc_h5t_std_ref_obj(), &reference) >= 0 else {
            throw fail(.unreadable, path, "attribute '\(name)' (object reference) cannot be read")
        }
        let object = H5Rdereference2(file.id, sc_h5p_default(), H5R_OBJECT, &reference)
        guard object >= 0 else { throw fail(.corruptSparse, path, "attribute '\(name)' refers to a missing object") }
        let handle = H5ID(object, close: H5Oclose)
        let length = H5Iget_name(handle.id, nil, 0)
        guard length > 0 else { throw fail(.unreadable, path, "attribute '\(name)' refers to an unnamed object") }
        var buffer = [CChar](repeating: 0, count: length + 1)
        H5Iget_name(handle.id, &buffer, length + 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Datasets

    struct DatasetInfo {
        let path: String
        let shape: [Int]
        let typeClass: H5T_class_t
        let elementType: ElementType?
        let chunks: [Int]?
        let filters: [FilterInfo]
        var isString: Bool { typeClass == H5T_STRING }
    }

    struct FilterInfo {
        let id: Int
        let name: String
        var isAvailable: Bool { H5Zfilter_avail(H5Z_filter_t(id)) > 0 }
    }

    func datasetInfo(_ path: String) throws(AnnDataError) -> DatasetInfo {
        let dataset = try openDataset(path)
        let shape = try extent(of: dataset.id, path)
        let rank = shape.count
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        let typeClass = H5Tget_class(type.id)
        let plist = H5ID(H5Dget_create_plist(dataset.id), close: H5Pclose)
        var chunks: [Int]?
        if H5Pget_layout(plist.id) == H5D_CHUNKED {
            var chunkDims = [hsize_t](repeating: 0, count: max(rank, 1))
            H5Pget_chunk(plist.id, Int32(rank), &chunkDims)
            chunks = chunkDims.prefix(rank).map { Int(clamping: $0) }
        }
        var filters: [FilterInfo] = []
        for index in 0..<max(0, H5Pget_nfilters(plist.id)) {
            var flags: UInt32 = 0
            var nValues = 0
            var name = [CChar](repeating: 0, count: 256)
            var config: UInt32 = 0
            let filter = H5Pget_filter2(plist.id, UInt32(index), &flags, &nValues, nil, 256, &name, &config)
            filters.append(FilterInfo(id: Int(filter), name: Self.filterName(Int(filter), declared: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))))
        }
        return DatasetInfo(path: path, shape: shape, typeClass: typeClass,
                           elementType: Self.elementType(type.id), chunks: chunks, filters: filters)
    }

    /// A dataset's dimensions, refused when the file claims more than 2^62 elements in all (a
    /// count that no file holds and that overflows every size computed from it).
    func extent(of dataset: hid_t, _ path: String) throws(AnnDataError) -> [Int] {
        let space = H5ID(H5Dget_space(dataset), close: H5Sclose)
        let rank = Int(H5Sget_simple_extent_ndims(space.id))
        guard rank >= 0, rank <= 32 else { throw fail(.unreadable, path, "dataspace cannot be read (rank \(rank))") }
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        if rank > 0, H5Sget_simple_extent_dims(space.id, &dims, nil) < 0 {
            throw fail(.unreadable, path, "dataspace cannot be read (\(Self.errorStackMessage()))")
        }
        var total: UInt64 = 1
        for dim in dims.prefix(rank) {
            let (product, overflow) = total.multipliedReportingOverflow(by: dim)
            guard !overflow, dim < 1 << 62, product < 1 << 62 else {
                throw fail(.shapeMismatch, path, "dataspace \(dims.prefix(rank).map(String.init)) is larger than any file can hold")
            }
            total = product
        }
        return dims.prefix(rank).map { Int($0) }
    }

    /// Before reading a whole dataset into memory: the entries it declares must be stored in the
    /// file (unfiltered), or at most gzip's ~1000:1 expansion of what is stored (filtered), so a
    /// damaged dataspace cannot make us allocate terabytes.
    func checkStored(_ dataset: hid_t, _ path: String, count: Int) throws(AnnDataError) {
        guard count > 0 else { return }
        let type = H5ID(H5Dget_type(dataset), close: H5Tclose)
        let elementSize = max(1, H5Tget_size(type.id))
        let plist = H5ID(H5Dget_create_plist(dataset), close: H5Pclose)
        let filtered = H5Pget_nfilters(plist.id) > 0
        let stored = Double(H5Dget_storage_size(dataset))
        let declared = Double(count) * Double(elementSize)
        if filtered ? declared > stored * 1100 + 65536 : declared > stored {
            throw fail(.corruptSparse, path, "declares \(count) entries (\(Int(declared)) bytes) but the file stores \(Int(stored)) bytes of it")
        }
    }

    /// Common names for the filters h5py and hdf5plugin register, so a missing one can be named.
    private static func filterName(_ id: Int, declared: String) -> String {
        switch id {
        case 1: "gzip"
        case 2: "shuffle"
        case 3: "fletcher32"
        case 4: "szip"
        case 5: "nbit"
        case 6: "scaleoffset"
        case 307: "bzip2"
        case 32000: "lzf"
        case 32001: "blosc"
        case 32004: "lz4"
        case 32008: "bitshuffle"
        case 32015: "zstd"
        case 32026: "blosc2"
        default: declared.isEmpty ? "filter \(id)" : declared
        }
    }

    static func elementType(_ type: hid_t) -> ElementType? {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_FLOAT:
            return size == 4 ? .float32 : size == 8 ? .float64 : nil
        case H5T_INTEGER:
            let signed = H5Tget_sign(type) == H5T_SGN_2
            switch size {
            case 1: return signed ? .int8 : .uint8
            case 2: return signed ? .int16 : .uint16
            case 4: return signed ? .int32 : .uint32
            case 8: return signed ? .int64 : .uint64
            default: return nil
            }
        case H5T_ENUM:
            // h5py stores numpy bool as an int8 enum {FALSE, TRUE}.
            return size == 1 ? .bool : nil
        default:
            return nil
        }
    }

    /// Fails with a clear message when a dataset needs a compression filter this libhdf5 lacks.
    func requireFilters(_ info: DatasetInfo) throws(AnnDataError) {
        if let missing = info.filters.first(where: { !$0.isAvailable }) {
            // blosc is a Debian package away (libhdf5 loads it from its plugin directory, which
            // HDF5_PLUGIN_PATH replaces when set).
            let install = missing.id == 32001
                ? " or install Debian's hdf5-filter-plugin-blosc-serial (and leave HDF5_PLUGIN_PATH unset or include its directory)" : ""
            throw fail(.missingFilter, info.path,
                       "compressed with \(missing.name) (HDF5 filter \(missing.id)), which this libhdf5 cannot decode; rewrite the file with gzip or no compression (e.g. anndata write_h5ad(compression=\"gzip\"))\(install)")
        }
    }

    /// Reads a whole numeric dataset as `T` (HDF5 converts to the memory type).
    func read<T: H5NativeType>(_ path: String, as: T.Type) throws(AnnDataError) -> [T] {
        let dataset = try H5Dataset(self, path)
        try checkStored(dataset.handle.id, path, count: dataset.shape.reduce(1, *))
        return try dataset.read(as: T.self, start: nil, count: nil)
    }

    /// Reads a whole 1-D dataset of 1-byte elements (bools stored as enums or integers) as stored:
    /// HDF5 cannot convert an enum to an integer type.
    func readBytes(_ path: String) throws(AnnDataError) -> [Int8] {
        let dataset = try openDataset(path)
        let count = try extent(of: dataset.id, path).reduce(1, *)
        try checkStored(dataset.id, path, count: count)
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        guard H5Tget_size(type.id) == 1 else { throw fail(.wrongType, path, "expected 1-byte booleans") }
        let native = H5ID(H5Tget_native_type(type.id, H5T_DIR_ASCEND), close: H5Tclose)
        var values = [Int8](repeating: 0, count: count)
        if count == 0 { return values }
        let status = values.withUnsafeMutableBytes {
            H5Dread(dataset.id, native.id, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw fail(.unreadable, path, "read failed (\(Self.errorStackMessage()))") }
        return values
    }

    // MARK: - Compound datasets (anndata < 0.7 stored obs/var as record arrays)

    struct CompoundField {
        let name: String
        let isString: Bool
        let elementType: ElementType?
    }

    /// The fields of a compound dataset, in stored order; nil when the dataset is not compound.
    func compoundFields(_ path: String) throws(AnnDataError) -> [CompoundField]? {
        let dataset = try openDataset(path)
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        guard H5Tget_class(type.id) == H5T_COMPOUND else { return nil }
        return (0..<UInt32(max(0, H5Tget_nmembers(type.id)))).map { index in
            let namePointer = H5Tget_member_name(type.id, index)
            defer { free(namePointer) }
            let member = H5ID(H5Tget_member_type(type.id, index), close: H5Tclose)
            return CompoundField(name: namePointer.map { String(cString: $0) } ?? "",
                                 isString: H5Tget_class(member.id) == H5T_STRING,
                                 elementType: Self.elementType(member.id))
        }
    }

    /// One field of a compound dataset: HDF5 matches compound members by name, so a memory type
    /// holding only that member reads just it.
    private func readCompoundField(_ path: String, field: String, memberType: hid_t, size: Int,
                                   into buffer: UnsafeMutableRawPointer) throws(AnnDataError) {
        let dataset = try openDataset(path)
        let memType = H5ID(H5Tcreate(H5T_COMPOUND, size), close: H5Tclose)
        H5Tinsert(memType.id, field, 0, memberType)
        guard H5Dread(dataset.id, memType.id, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), buffer) >= 0 else {
            throw fail(.unreadable, "\(path)[\(field)]", "field cannot be read (\(Self.errorStackMessage()))")
        }
    }

    func compoundRowCount(_ path: String) throws(AnnDataError) -> Int {
        let dataset = try openDataset(path)
        let count = try extent(of: dataset.id, path).reduce(1, *)
        try checkStored(dataset.id, path, count: count)
        return count
    }

    func readCompoundNumbers(_ path: String, field: String) throws(AnnDataError) -> [Double] {
        var values = [Double](repeating: 0, count: try compoundRowCount(path))
        if values.isEmpty { return values }
        let result: Result<Void, AnnDataError> = values.withUnsafeMutableBytes { buffer in
            Result { () throws(AnnDataError) in
                try readCompoundField(path, field: field, memberType: sc_h5t_native_double(), size: 8, into: buffer.baseAddress!)
            }
        }
        try result.get()
        return values
    }

    /// A 1-byte field (numpy bool, stored as an enum HDF5 cannot convert to a number).
    func readCompoundBytes(_ path: String, field: String) throws(AnnDataError) -> [Int8] {
        let dataset = try openDataset(path)
        let fileType = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        let index = H5Tget_member_index(fileType.id, field)
        guard index >= 0 else { throw fail(.missingElement, "\(path)[\(field)]", "no such field") }
        let member = H5ID(H5Tget_member_type(fileType.id, UInt32(index)), close: H5Tclose)
        let native = H5ID(H5Tget_native_type(member.id, H5T_DIR_ASCEND), close: H5Tclose)
        guard H5Tget_size(native.id) == 1 else { throw fail(.wrongType, "\(path)[\(field)]", "expected 1-byte booleans") }
        var values = [Int8](repeating: 0, count: try compoundRowCount(path))
        if values.isEmpty { return values }
        let result: Result<Void, AnnDataError> = values.withUnsafeMutableBytes { buffer in
            Result { () throws(AnnDataError) in
                try readCompoundField(path, field: field, memberType: native.id, size: 1, into: buffer.baseAddress!)
            }
        }
        try result.get()
        return values
    }

    func readCompoundStrings(_ path: String, field: String) throws(AnnDataError) -> [String] {
        let count = try compoundRowCount(path)
        if count == 0 { return [] }
        // anndata 0.6 with numpy's 'S' dtype (scanpy's bundled pbmc68k_reduced) stored fixed-length
        // byte strings; libhdf5 converts those to fixed-length memory strings only.
        let dataset = try openDataset(path)
        let fileType = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        let index = H5Tget_member_index(fileType.id, field)
        guard index >= 0 else { throw fail(.missingElement, "\(path)[\(field)]", "no such field") }
        let member = H5ID(H5Tget_member_type(fileType.id, UInt32(index)), close: H5Tclose)
        if H5Tis_variable_str(member.id) <= 0 {
            let width = H5Tget_size(member.id)
            let fixed = H5ID(H5Tcopy(sc_h5t_c_s1()), close: H5Tclose)
            H5Tset_size(fixed.id, width)
            H5Tset_cset(fixed.id, H5Tget_cset(member.id))
            // Null-padded, so a value filling the whole width needs no terminator.
            H5Tset_strpad(fixed.id, H5T_STR_NULLPAD)
            var bytes = [UInt8](repeating: 0, count: count * width)
            let result: Result<Void, AnnDataError> = bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(AnnDataError) in
                    try readCompoundField(path, field: field, memberType: fixed.id, size: width, into: buffer.baseAddress!)
                }
            }
            try result.get()
            return (0..<count).map { row in
                let slice = bytes[(row * width)..<((row + 1) * width)]
                let end = slice.firstIndex(of: 0) ?? slice.endIndex
                return String(decoding: slice[slice.startIndex..<end], as: UTF8.self)
            }
        }
        let stringType = H5ID(H5Tcopy(sc_h5t_c_s1()), close: H5Tclose)
        H5Tset_size(stringType.id, sc_h5t_variable())
        H5Tset_cset(stringType.id, H5T_CSET_UTF8)
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        let result: Result<Void, AnnDataError> = pointers.withUnsafeMutableBytes { buffer in
            Result { () throws(AnnDataError) in
                try readCompoundField(path, field: field, memberType: stringType.id, size: MemoryLayout<UnsafeMutablePointer<CChar>?>.size,
                                      into: buffer.baseAddress!)
            }
        }
        defer { for pointer in pointers { free(pointer) } }
        try result.get()
        return pointers.map { $0.map { String(cString: $0) } ?? "" }
    }

    /// Reads a whole string dataset (variable- or fixed-length, ASCII or UTF-8). Variable-length
    /// strings are never read through libhdf5's heap lookup when their references can be checked
    /// first: a damaged one makes libhdf5 1.10 read out of bounds.
    func readStringDataset(_ path: String) throws(AnnDataError) -> [String] {
        if let strings = try checkedHeapStrings(path) { return strings.strings }
        return try libhdf5Strings(path)
    }

    /// A string dataset as libhdf5 converts it: fixed-length strings, and variable-length ones
    /// in a layout `checkedHeapStrings` does not read.
    func libhdf5Strings(_ path: String) throws(AnnDataError) -> [String] {
        // A missing filter is named as for numbers, not as libhdf5's plugin error.
        try requireFilters(datasetInfo(path))
        let dataset = try openDataset(path)
        let count = try extent(of: dataset.id, path).reduce(1, *)
        if count == 0 { return [] }
        try checkStored(dataset.id, path, count: count)
        let type = H5ID(H5Dget_type(dataset.id), close: H5Tclose)
        guard H5Tget_class(type.id) == H5T_STRING else { throw fail(.wrongType, path, "expected strings") }
        return try readStrings(count: count, fileType: type.id, what: path) { memType, buffer in
            H5Dread(dataset.id, memType, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), buffer)
        }
    }

    private func readStrings(count: Int, fileType: hid_t, what: String,
                             read: (hid_t, UnsafeMutableRawPointer?) -> herr_t) throws(AnnDataError) -> [String] {
        let memType = H5ID(H5Tcopy(sc_h5t_c_s1()), close: H5Tclose)
        H5Tset_cset(memType.id, H5Tget_cset(fileType))
        if H5Tis_variable_str(fileType) > 0 {
            H5Tset_size(memType.id, sc_h5t_variable())
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            let status = pointers.withUnsafeMutableBytes { read(memType.id, $0.baseAddress) }
            guard status >= 0 else { throw fail(.unreadable, what, "strings cannot be read (\(Self.errorStackMessage()))") }
            defer { for pointer in pointers { free(pointer) } }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        let width = H5Tget_size(fileType)
        let (bytesNeeded, overflow) = count.multipliedReportingOverflow(by: width)
        guard width > 0, !overflow, bytesNeeded < 1 << 40 else {
            throw fail(.unreadable, what, "\(count) strings of \(width) bytes cannot be read")
        }
        H5Tset_size(memType.id, width)
        // Null-padded memory strings need no terminator: a full-width "anndata" stays whole.
        H5Tset_strpad(memType.id, H5T_STR_NULLPAD)
        var bytes = [UInt8](repeating: 0, count: count * width)
        let status = bytes.withUnsafeMutableBytes { read(memType.id, $0.baseAddress) }
        guard status >= 0 else { throw fail(.unreadable, what, "strings cannot be read (\(Self.errorStackMessage()))") }
        return (0..<count).map { index in
            let slice = bytes[(index * width)..<((index + 1) * width)]
            let end = slice.firstIndex(of: 0) ?? slice.endIndex
            return String(decoding: slice[slice.startIndex..<end], as: UTF8.self)
        }
    }
}

/// Swift element types that map onto an HDF5 native memory type.
protocol H5NativeType: Numeric, BitwiseCopyable {
    static var h5Type: hid_t { get }
}

extension Double: H5NativeType { static var h5Type: hid_t { sc_h5t_native_double() } }
extension Float: H5NativeType { static var h5Type: hid_t { sc_h5t_native_float() } }
extension Int8: H5NativeType { static var h5Type: hid_t { sc_h5t_native_int8() } }
extension Int16: H5NativeType { static var h5Type: hid_t { sc_h5t_native_int16() } }
extension Int32: H5NativeType { static var h5Type: hid_t { sc_h5t_native_int32() } }
extension Int64: H5NativeType { static var h5Type: hid_t { sc_h5t_native_int64() } }
extension UInt8: H5NativeType { static var h5Type: hid_t { sc_h5t_native_uint8() } }
extension UInt16: H5NativeType { static var h5Type: hid_t { sc_h5t_native_uint16() } }
extension UInt32: H5NativeType { static var h5Type: hid_t { sc_h5t_native_uint32() } }
extension UInt64: H5NativeType { static var h5Type: hid_t { sc_h5t_native_uint64() } }

/// An open dataset, kept open across the many hyperslab reads of a streaming pass, with a chunk
/// cache large enough that a compressed chunk straddling two blocks is decompressed once.
final class H5Dataset {
    let reader: H5Reader
    let path: String
    let handle: H5ID
    let shape: [Int]

    init(_ reader: H5Reader, _ path: String, chunkCacheBytes: Int = 0) throws(AnnDataError) {
        self.reader = reader
        self.path = path
        var access = sc_h5p_default()
        var accessList: H5ID?
        if chunkCacheBytes > 0 {
            let list = H5ID(H5Pcreate(sc_h5p_dataset_access()), close: H5Pclose)
            H5Pset_chunk_cache(list.id, 12_421, chunkCacheBytes, 0.75)
            accessList = list
            access = list.id
        }
        FileProbe.note(path)
        let id = H5Dopen2(reader.file.id, path, access)
        _ = accessList
        guard id >= 0 else { throw reader.fail(.missingElement, path, "dataset cannot be opened (\(H5Reader.errorStackMessage()))") }
        handle = H5ID(id, close: H5Dclose)
        shape = try reader.extent(of: id, path)
    }

    /// Reads the hyperslab `start`+`count` (one entry per dimension; nil = everything) as `T`,
    /// straight into uninitialised storage (no zero-fill of a buffer about to be overwritten).
    func read<T: H5NativeType>(as: T.Type, start: [Int]?, count: [Int]?) throws(AnnDataError) -> [T] {
        var total = 1
        for extent in count ?? shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: extent)
            guard extent >= 0, !overflow, product < 1 << 48 else {
                throw reader.fail(.corruptSparse, path, "selection \(count ?? shape) is larger than memory")
            }
            total = product
        }
        if total == 0 { return [] }
        var failure: AnnDataError?
        let values = [T](unsafeUninitializedCapacity: total) { buffer, initialized in
            do throws(AnnDataError) {
                try read(into: UnsafeMutableRawPointer(buffer.baseAddress!), type: T.h5Type, start: start, count: count)
                initialized = total
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return values
    }

    /// Reads a hyperslab of numbers as Double. The values are read in their stored type and
    /// widened here: libhdf5's own conversion path is several times slower than the read itself.
    func readDoubles(_ type: ElementType, start: [Int], count: [Int]) throws(AnnDataError) -> [Double] {
        func widen<T: H5NativeType>(_: T.Type, _ convert: (T) -> Double) throws(AnnDataError) -> [Double] {
            let raw = try read(as: T.self, start: start, count: count)
            return [Double](unsafeUninitializedCapacity: raw.count) { buffer, initialized in
                raw.withUnsafeBufferPointer { source in
                    for k in 0..<source.count { buffer[k] = convert(source[k]) }
                }
                initialized = raw.count
            }
        }
        switch type {
        case .float64: return try read(as: Double.self, start: start, count: count)
        case .float32: return try widen(Float.self) { Double($0) }
        case .int8: return try widen(Int8.self) { Double($0) }
        case .int16: return try widen(Int16.self) { Double($0) }
        case .int32: return try widen(Int32.self) { Double($0) }
        case .int64: return try widen(Int64.self) { Double($0) }
        case .uint8, .bool: return try widen(UInt8.self) { Double($0) }
        case .uint16: return try widen(UInt16.self) { Double($0) }
        case .uint32: return try widen(UInt32.self) { Double($0) }
        case .uint64: return try widen(UInt64.self) { Double($0) }
        }
    }

    func read(into buffer: UnsafeMutableRawPointer, type: hid_t, start: [Int]?, count: [Int]?) throws(AnnDataError) {
        guard let start, let count else {
            guard H5Dread(handle.id, type, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), buffer) >= 0 else {
                throw reader.fail(.unreadable, path, "read failed (\(H5Reader.errorStackMessage()))")
            }
            return
        }
        for (dimension, (first, length)) in zip(start, count).enumerated()
        where first < 0 || length < 0 || dimension >= shape.count || length > shape[dimension] - first {
            throw reader.fail(.corruptSparse, path, "selection \(start)+\(count) lies outside the dataset's shape \(shape)")
        }
        let fileSpace = H5ID(H5Dget_space(handle.id), close: H5Sclose)
        var hStart = start.map { hsize_t($0) }
        var hCount = count.map { hsize_t($0) }
        guard H5Sselect_hyperslab(fileSpace.id, H5S_SELECT_SET, &hStart, nil, &hCount, nil) >= 0 else {
            throw reader.fail(.unreadable, path, "cannot select \(start)+\(count)")
        }
        var memoryDims = [hsize_t(count.reduce(1, *))]
        let memorySpace = H5ID(H5Screate_simple(1, &memoryDims, nil), close: H5Sclose)
        guard H5Dread(handle.id, type, memorySpace.id, fileSpace.id, sc_h5p_default(), buffer) >= 0 else {
            throw reader.fail(.unreadable, path, "read failed (\(H5Reader.errorStackMessage()))")
        }
    }
}
