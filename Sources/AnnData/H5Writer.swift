import CHDF5
import Foundation

/// Creates one new HDF5 file and the few objects a staged copy needs: groups, string and integer
/// attributes, and contiguous datasets whose file space is reserved at creation so their bytes can
/// later be written in place. Not Sendable: one writer per thread, like `H5Reader`.
final class H5Writer {
    /// The name errors report: the file the user asked for, not the temporary one being written.
    let fileName: String
    private var file: hid_t

    /// Creates (or truncates) the file at `path`.
    init(creating path: String, reportingAs name: String) throws(AnnDataError) {
        // libhdf5 prints its error stack to stderr by default; we report errors ourselves. The
        // setting is per thread in a thread-safe libhdf5 (Debian's is), so it is made here.
        H5Eset_auto2(sc_h5e_default(), nil, nil)
        fileName = name
        file = H5Fcreate(path, sc_h5f_acc_trunc(), sc_h5p_default(), sc_h5p_default())
        guard file >= 0 else {
            throw AnnDataError(.unreadable, file: name, path: "", "cannot create \(path) (\(H5Reader.errorStackMessage()))")
        }
    }

    deinit {
        if file >= 0 { H5Fclose(file) }
    }

    private func fail(_ path: String, _ detail: String) -> AnnDataError {
        AnnDataError(.unreadable, file: fileName, path: path, "\(detail) (\(H5Reader.errorStackMessage()))")
    }

    func createGroup(_ path: String) throws(AnnDataError) {
        let id = H5Gcreate2(file, path, sc_h5p_default(), sc_h5p_default(), sc_h5p_default())
        guard id >= 0 else { throw fail(path, "cannot create group") }
        H5Gclose(id)
    }

    /// A scalar variable-length UTF-8 string attribute, as h5py writes anndata's encoding attributes.
    func setAttribute(_ path: String, _ name: String, string value: String) throws(AnnDataError) {
        let type = H5ID(H5Tcopy(sc_h5t_c_s1()), close: H5Tclose)
        H5Tset_size(type.id, sc_h5t_variable())
        H5Tset_cset(type.id, H5T_CSET_UTF8)
        let space = H5ID(H5Screate(H5S_SCALAR), close: H5Sclose)
        let id = H5Acreate_by_name(file, path, name, type.id, space.id, sc_h5p_default(), sc_h5p_default(), sc_h5p_default())
        guard id >= 0 else { throw fail(path, "cannot create attribute '\(name)'") }
        let attribute = H5ID(id, close: H5Aclose)
        let status = value.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            return H5Awrite(attribute.id, type.id, &pointer)
        }
        guard status >= 0 else { throw fail(path, "cannot write attribute '\(name)'") }
    }

    /// A 1-D int64 attribute, such as a sparse matrix's `shape`.
    func setAttribute(_ path: String, _ name: String, integers values: [Int]) throws(AnnDataError) {
        var dims = [hsize_t(values.count)]
        let space = H5ID(H5Screate_simple(1, &dims, nil), close: H5Sclose)
        let id = H5Acreate_by_name(file, path, name, sc_h5t_native_int64(), space.id, sc_h5p_default(), sc_h5p_default(), sc_h5p_default())
        guard id >= 0 else { throw fail(path, "cannot create attribute '\(name)'") }
        let attribute = H5ID(id, close: H5Aclose)
        let wide = values.map { Int64($0) }
        let status = wide.withUnsafeBytes { H5Awrite(attribute.id, sc_h5t_native_int64(), $0.baseAddress) }
        guard status >= 0 else { throw fail(path, "cannot write attribute '\(name)'") }
    }

    /// A 1-D contiguous dataset of `count` elements with its file space allocated now and never
    /// filled: the caller writes every byte itself, so a fill would only write the file twice.
    func createContiguousDataset(_ path: String, type: ElementType, count: Int) throws(AnnDataError) -> H5ID {
        let plist = H5ID(H5Pcreate(sc_h5p_dataset_create()), close: H5Pclose)
        guard H5Pset_layout(plist.id, H5D_CONTIGUOUS) >= 0,
              H5Pset_alloc_time(plist.id, H5D_ALLOC_TIME_EARLY) >= 0,
              H5Pset_fill_time(plist.id, H5D_FILL_TIME_NEVER) >= 0 else {
            throw fail(path, "cannot set up the dataset's storage")
        }
        var dims = [hsize_t(count)]
        let space = H5ID(H5Screate_simple(1, &dims, nil), close: H5Sclose)
        let id = H5Dcreate2(file, path, type.nativeType, space.id, sc_h5p_default(), plist.id, sc_h5p_default())
        guard id >= 0 else { throw fail(path, "cannot create dataset") }
        return H5ID(id, close: H5Dclose)
    }

    /// Writes a whole dataset from memory.
    func write<T: H5NativeType>(_ values: [T], to dataset: H5ID, path: String) throws(AnnDataError) {
        let status = values.withUnsafeBytes {
            H5Dwrite(dataset.id, T.h5Type, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw fail(path, "cannot write dataset") }
    }

    /// Byte offset of a contiguous dataset's storage from the start of the file; nil when it has
    /// none (zero elements).
    func fileOffset(of dataset: H5ID) -> Int? {
        let offset = H5Dget_offset(dataset.id)
        return offset == sc_haddr_undef() ? nil : Int(offset)
    }

    /// Flushes and closes the file. Every object must be closed first: libhdf5 otherwise defers
    /// the real close, and with it any write error, to the last object's close.
    func close() throws(AnnDataError) {
        let status = H5Fclose(file)
        file = -1
        guard status >= 0 else { throw fail("/", "cannot flush and close") }
    }
}

extension ElementType {
    /// The HDF5 native type of this element type, for creating datasets that hold it.
    var nativeType: hid_t {
        switch self {
        case .float32: Float.h5Type
        case .float64: Double.h5Type
        case .int8: Int8.h5Type
        case .int16: Int16.h5Type
        case .int32: Int32.h5Type
        case .int64: Int64.h5Type
        case .uint8, .bool: UInt8.h5Type
        case .uint16: UInt16.h5Type
        case .uint32: UInt32.h5Type
        case .uint64: UInt64.h5Type
        }
    }
}
