@testable import AnnData
import CHDF5
import Foundation
import Testing

/// Variable-length strings are read from their checked heap references in the file mapped in
/// memory (the global heap parsed in place); they must be libhdf5's strings byte for byte.
@Suite struct StoredStringTests {
    @Test(arguments: Fixtures.fileNames)
    func indexNameBytesAreTheNames(_ name: String) throws {
        let file = try AnnDataFile(path: Fixtures.path(name))
        for frame in [file.obs, file.vars] {
            var names: [String] = []
            try frame.forEachIndexName { names.append(String(decoding: $0, as: UTF8.self)) }
            #expect(names == (try frame.index()), "\(name) \(frame.path)")
        }
    }

    /// Every variable-length string dataset of every fixture (contiguous, gzip, lzf, blosc, from
    /// anndata 0.7 to 0.13), read from the checked references, equals libhdf5's own read.
    @Test func checkedStringsAreLibhdf5sStrings() throws {
        var datasets = 0, chunked = 0
        for name in Fixtures.fileNames {
            let reader = try AnnDataFile(path: Fixtures.path(name)).reader
            for path in Self.stringDatasets(reader) {
                let strings = try #require(try reader.checkedHeapStrings(path), "\(name) \(path)")
                #expect(strings.strings == Self.libhdf5Strings(reader, path), "\(name) \(path)")
                datasets += 1
                let dataset = try reader.openDataset(path)
                let creation = H5Dget_create_plist(dataset.id)
                if H5Pget_layout(creation) == H5D_CHUNKED { chunked += 1 }
                H5Pclose(creation)
            }
        }
        #expect(datasets > 100 && chunked > 20, "\(datasets) datasets, \(chunked) chunked")
    }

    /// A reference naming an object its collection does not hold, in a gzip-chunked dataset and
    /// in an attribute: libhdf5 1.10 reads past the collection's table for both.
    @Test func aDamagedHeapIsNamedInChunksAndAttributes() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("heap-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = H5Fcreate(path, sc_h5f_acc_trunc(), sc_h5p_default(), sc_h5p_default())
        let type = H5Tcopy(sc_h5t_c_s1())
        H5Tset_size(type, sc_h5t_variable())
        var dims: [hsize_t] = [300], chunk: [hsize_t] = [64]
        let space = H5Screate_simple(1, &dims, nil)
        let creation = H5Pcreate(sc_h5p_dataset_create())
        H5Pset_chunk(creation, 1, &chunk)
        H5Pset_deflate(creation, 6)
        let dataset = H5Dcreate2(file, "names", type, space, sc_h5p_default(), creation, sc_h5p_default())
        let names = (0..<300).map { strdup("cell\($0)") }
        defer { names.forEach { free($0) } }
        #expect(H5Dwrite(dataset, type, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), names) >= 0)
        var one: [hsize_t] = [1]
        let attributeSpace = H5Screate_simple(1, &one, nil)
        let attribute = H5Acreate2(dataset, "encoding-type", type, attributeSpace, sc_h5p_default(), sc_h5p_default())
        let labels = [strdup("string-array")]
        defer { free(labels[0]) }
        #expect(H5Awrite(attribute, type, labels) >= 0)
        H5Aclose(attribute); H5Sclose(attributeSpace); H5Dclose(dataset); H5Pclose(creation); H5Sclose(space); H5Tclose(type); H5Fclose(file)

        let intact = try H5Reader(path: path)
        #expect(try intact.checkedHeapStrings("/names")?.strings == (0..<300).map { "cell\($0)" })
        #expect(try intact.stringArrayAttribute("/names", "encoding-type") == ["string-array"])
        // Which name object 7 holds: its reference as stored (length, collection, index).
        var references = [UInt8](repeating: 0, count: 300 * HeapReference.size)
        let stored = H5Dopen2(intact.file.id, "/names", sc_h5p_default())
        #expect(H5Dread(stored, try #require(HeapReference.storedType), sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), &references) >= 0)
        H5Dclose(stored)
        let holder = try #require((0..<300).first { references[$0 * 16 + 12] == 7 && references[$0 * 16 + 13] == 0 })
        #expect(references[holder * 16] == UInt8("cell\(holder)".utf8.count))

        // Object 7 of the collection holding the names renumbered 9999.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let collection = try #require((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual("GCOL".utf8) })
        var object = collection + 16
        while bytes[object] | bytes[object + 1] != 0, !(bytes[object] == 7 && bytes[object + 1] == 0) {
            let size = (0..<8).reduce(0) { $0 | Int(bytes[object + 8 + $1]) << (8 * $1) }
            object += 16 + (size + 7) / 8 * 8
        }
        (bytes[object], bytes[object + 1]) = (0x0f, 0x27)
        // And the attribute's object, wherever libhdf5 put it, renumbered 9998.
        let label = try #require((0..<(bytes.count - 12)).first { bytes[$0..<($0 + 12)].elementsEqual("string-array".utf8) })
        let labelIndex = Int(bytes[label - 16]) | Int(bytes[label - 15]) << 8
        let labelCollection = try #require((0...label).reversed().first { bytes[$0..<($0 + 4)].elementsEqual("GCOL".utf8) })
        (bytes[label - 16], bytes[label - 15]) = (0x0e, 0x27)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let damaged = try H5Reader(path: path)
        #expect(throws: AnnDataError(.corruptSparse, file: path, path: "/names",
                                     "string \(holder)'s global heap reference names object 7, which its global heap collection (address \(collection)) does not hold (damaged variable-length string)")) {
            try damaged.checkedHeapStrings("/names")
        }
        #expect(throws: AnnDataError(.corruptSparse, file: path, path: "/names@encoding-type",
                                     "string 0's global heap reference names object \(labelIndex), which its global heap collection (address \(labelCollection)) does not hold (damaged variable-length string)")) {
            try damaged.stringArrayAttribute("/names", "encoding-type")
        }
    }

    /// Paths of the variable-length string datasets of a file.
    static func stringDatasets(_ reader: H5Reader) -> [String] {
        final class Found { var paths: [String] = [] }
        let found = Found()
        H5Ovisit2(reader.file.id, H5_INDEX_NAME, H5_ITER_NATIVE, { object, name, info, context in
            guard let name, let info, let context, info.pointee.type == H5O_TYPE_DATASET else { return 0 }
            let dataset = H5Dopen2(object, name, sc_h5p_default())
            defer { H5Dclose(dataset) }
            let type = H5Dget_type(dataset)
            defer { H5Tclose(type) }
            if H5Tis_variable_str(type) > 0 {
                Unmanaged<Found>.fromOpaque(context).takeUnretainedValue().paths.append("/" + String(cString: name))
            }
            return 0
        }, Unmanaged.passUnretained(found).toOpaque(), sc_h5o_info_basic())
        return found.paths
    }

    /// libhdf5's own read of a variable-length string dataset, as C strings.
    static func libhdf5Strings(_ reader: H5Reader, _ path: String) -> [String] {
        let dataset = H5Dopen2(reader.file.id, path, sc_h5p_default())
        defer { H5Dclose(dataset) }
        let space = H5Dget_space(dataset)
        defer { H5Sclose(space) }
        let type = H5Tcopy(sc_h5t_c_s1())
        defer { H5Tclose(type) }
        H5Tset_size(type, sc_h5t_variable())
        H5Tset_cset(type, H5T_CSET_UTF8)
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: Int(H5Sget_simple_extent_npoints(space)))
        H5Dread(dataset, type, sc_h5s_all(), sc_h5s_all(), sc_h5p_default(), &pointers)
        defer { pointers.forEach { free($0) } }
        return pointers.map { $0.map { String(cString: $0) } ?? "" }
    }
}

/// Labels of stored numbers as pandas prints them; expected values from Python's `repr` (float64)
/// and numpy 2.4's `str` (float32).
@Suite struct NumberSpellingTests {
    @Test func float64IsPythonsRepr() {
        let cases: [(Double, String)] = [
            (-0.5, "-0.5"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"), (0.00001, "1e-05"), (-0.0, "-0.0"), (1.5e-7, "1.5e-07"), (2.5, "2.5"), (100.0, "100.0"),
            (1e22, "1e+22"), (9007199254740993.0, "9007199254740992.0"), (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3, "0.3333333333333333"), (.nan, "nan"), (-.infinity, "-inf"),
        ]
        for (value, python) in cases { #expect(formatNumber(value, .float64) == python, "\(value)") }
    }

    @Test func float32IsNumpysStr() {
        let cases: [(Float, String)] = [
            (0.1, "0.1"), (1e-5, "1e-05"), (3.4e38, "3.4e+38"), (16777216, "1.6777216e+07"), (0.3, "0.3"),
            (999999.9, "999999.9"), (1e6, "1e+06"), (1e-4, "1e-04"), (0.00010001, "0.00010001"), (1, "1.0"),
        ]
        for (value, numpy) in cases { #expect(formatNumber(Double(value), .float32) == numpy, "\(value)") }
    }

    @Test func boolsAndIntegers() {
        #expect(formatNumber(1, .bool) == "True" && formatNumber(0, .bool) == "False")
        #expect(formatNumber(3, .int64) == "3" && formatNumber(-7, .int8) == "-7" && formatNumber(200, .uint8) == "200")
    }
}
