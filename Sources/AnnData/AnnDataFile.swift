import Foundation

/// An open `.h5ad` file: obs/var dataframes and matrix elements, read lazily.
///
/// Opening reads metadata only (index lengths, attributes), so it is instant on any file size.
public final class AnnDataFile {
    public let path: String
    let reader: H5Reader
    public let obs: DataFrameReader
    public let vars: DataFrameReader
    public let nObs: Int
    public let nVars: Int
    /// The root `encoding-version` (nil for files written before anndata 0.8).
    public let encodingVersion: String?

    public init(path: String) throws(AnnDataError) {
        self.path = path
        reader = try H5Reader(path: path)
        if let type = try reader.stringAttribute("/", "encoding-type"), type != "anndata" {
            throw reader.fail(.notAnnData, "/", "root encoding-type is '\(type)', not 'anndata'")
        }
        encodingVersion = try reader.stringAttribute("/", "encoding-version")
        if let encodingVersion, encodingVersion != "0.1.0" {
            throw reader.fail(.unsupportedEncoding, "/", "anndata encoding-version '\(encodingVersion)' is not supported (known: 0.1.0)")
        }
        for required in ["/obs", "/var"] where !reader.exists(required) {
            throw reader.fail(.notAnnData, required, "missing: not an AnnData file")
        }
        obs = try DataFrameReader(reader: reader, path: "/obs")
        vars = try DataFrameReader(reader: reader, path: "/var")
        nObs = try obs.rowCount()
        nVars = try vars.rowCount()
    }

    // MARK: - Matrices

    /// Names of the matrix elements present: `X`, `layers/<name>` in file order, `raw/X`.
    public func matrixNames() throws(AnnDataError) -> [String] {
        var names: [String] = []
        if reader.exists("/X") { names.append("X") }
        if reader.kind(of: "/layers") == .group {
            names += try reader.members(of: "/layers").map { "layers/\($0)" }
        }
        if rawMatrixPath != nil { names.append("raw/X") }
        return names
    }

    /// anndata < 0.7 wrote raw as top-level `raw.X` / `raw.var`.
    private var rawMatrixPath: String? { ["/raw/X", "/raw.X"].first(where: reader.exists) }
    private var rawVarPath: String? { ["/raw/var", "/raw.var"].first(where: reader.exists) }

    private func path(ofMatrix name: String) -> String {
        name == "raw/X" ? rawMatrixPath ?? "/raw/X" : "/" + name
    }

    /// Accepts `X`, `raw/X`, `layers/NAME` or a bare layer name.
    public func resolveMatrixName(_ name: String) throws(AnnDataError) -> String {
        let candidates = name == "X" || name == "raw/X" || name.hasPrefix("layers/") ? [name] : [name, "layers/\(name)"]
        for candidate in candidates where reader.exists(path(ofMatrix: candidate)) { return candidate }
        let known = (try? matrixNames())?.joined(separator: ", ") ?? ""
        throw reader.fail(.missingElement, "/" + candidates.last!, "no such matrix (present: \(known.isEmpty ? "none" : known))")
    }

    /// Metadata of a matrix element, checked against the file's shape: encodings, dtype, nnz,
    /// chunking, compression; `indices`/`data` lengths and the `indptr` length against `shape`.
    public func matrixInfo(_ name: String) throws(AnnDataError) -> MatrixInfo {
        let resolved = try resolveMatrixName(name)
        let path = path(ofMatrix: resolved)
        let expectedRows = nObs
        let expectedCols = resolved == "raw/X" ? try rawVarCount() : nVars
        let info: MatrixInfo
        switch reader.kind(of: path) {
        case .dataset:
            info = try denseInfo(name: resolved, path: path)
        case .group:
            info = try Self.sparseInfo(reader, name: resolved, path: path)
        default:
            throw reader.fail(.notAnnData, path, "neither a dataset nor a group")
        }
        guard info.nRows == expectedRows, info.nCols == expectedCols else {
            throw reader.fail(.shapeMismatch, path, "shape \(info.nRows)×\(info.nCols) disagrees with obs × var (\(expectedRows)×\(expectedCols))")
        }
        return info
    }

    /// A streaming reader over a matrix element.
    public func matrix(_ name: String = "X", budget: ReadBudget = .default) throws(AnnDataError) -> MatrixReader {
        MatrixReader(reader: reader, info: try matrixInfo(name), budget: budget)
    }

    private func denseInfo(name: String, path: String) throws(AnnDataError) -> MatrixInfo {
        let encoding = try reader.stringAttribute(path, "encoding-type")
        let version = try reader.stringAttribute(path, "encoding-version")
        if let encoding, encoding != "array" || version != "0.2.0" {
            throw reader.fail(.unsupportedEncoding, path, "unsupported encoding-type '\(encoding)' version '\(version ?? "none")' for a dense matrix")
        }
        let data = try reader.datasetInfo(path)
        guard data.shape.count == 2 else {
            throw reader.fail(.shapeMismatch, path, "dense matrix must be 2-D, found shape \(data.shape)")
        }
        guard let dtype = data.elementType, dtype != .bool else {
            throw reader.fail(.wrongType, path, "matrix values must be numeric")
        }
        // extent() bounds the product of the dimensions, so this cannot overflow.
        return MatrixInfo(name: name, path: path, format: .dense, dtype: dtype, nRows: data.shape[0], nCols: data.shape[1],
                          nnz: data.shape[0] * data.shape[1], indexDType: nil, chunks: data.chunks,
                          compression: Self.compression(data))
    }

    /// Static so a staged copy (GeneMajorCopy), which is not an AnnData file, is checked the same way.
    static func sparseInfo(_ reader: H5Reader, name: String, path: String) throws(AnnDataError) -> MatrixInfo {
        let format: MatrixFormat
        let shape: [Int]?
        if let encoding = try reader.stringAttribute(path, "encoding-type") {
            let version = try reader.stringAttribute(path, "encoding-version") ?? "none"
            switch encoding {
            case "csr_matrix": format = .csr
            case "csc_matrix": format = .csc
            default:
                throw reader.fail(.unsupportedEncoding, path, "unsupported encoding-type '\(encoding)' version '\(version)' for a matrix")
            }
            guard version == "0.1.0" else {
                throw reader.fail(.unsupportedEncoding, path, "\(encoding) encoding-version '\(version)' is not supported (known: 0.1.0)")
            }
            shape = try reader.integerArrayAttribute(path, "shape")
        } else if let legacy = try reader.stringAttribute(path, "h5sparse_format") {
            // anndata < 0.7 marked sparse groups the h5sparse way.
            switch legacy {
            case "csr": format = .csr
            case "csc": format = .csc
            default: throw reader.fail(.unsupportedEncoding, path, "unsupported h5sparse_format '\(legacy)'")
            }
            shape = try reader.integerArrayAttribute(path, "h5sparse_shape")
        } else {
            throw reader.fail(.unsupportedEncoding, path, "group without encoding-type where a matrix was expected")
        }
        guard let shape, shape.count == 2 else {
            throw reader.fail(.shapeMismatch, path, "sparse matrix needs a 2-element shape attribute")
        }
        // Sizes from a damaged attribute must not reach arithmetic: each dimension is checked
        // here, and the major one again against indptr's real length below.
        guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 48 }) else {
            throw reader.fail(.shapeMismatch, path, "shape attribute \(shape[0])×\(shape[1]) is not a matrix shape")
        }
        for member in ["data", "indices", "indptr"] where reader.kind(of: "\(path)/\(member)") != .dataset {
            throw reader.fail(.corruptSparse, "\(path)/\(member)", "missing from the \(format.rawValue) matrix")
        }
        let data = try reader.datasetInfo(path + "/data")
        let indices = try reader.datasetInfo(path + "/indices")
        let indptr = try reader.datasetInfo(path + "/indptr")
        guard let dtype = data.elementType, dtype != .bool else {
            throw reader.fail(.wrongType, path + "/data", "matrix values must be numeric")
        }
        guard let indexType = indices.elementType, indexType.isInteger,
              let indptrType = indptr.elementType, indptrType.isInteger else {
            throw reader.fail(.wrongType, path + "/indices", "indices and indptr must be integers")
        }
        guard data.shape.count == 1, indices.shape == data.shape else {
            throw reader.fail(.shapeMismatch, path + "/indices", "has \(indices.shape) entries but data has \(data.shape)")
        }
        let major = format == .csr ? shape[0] : shape[1]
        guard indptr.shape == [major + 1] else {
            throw reader.fail(.shapeMismatch, path + "/indptr",
                              "has \(indptr.shape.first ?? 0) entries but the shape attribute \(shape[0])×\(shape[1]) needs \(major + 1)")
        }
        return MatrixInfo(name: name, path: path, format: format, dtype: dtype, nRows: shape[0], nCols: shape[1],
                          nnz: data.shape[0], indexDType: indexType, chunks: data.chunks, compression: Self.compression(data))
    }

    static func compression(_ info: H5Reader.DatasetInfo) -> String? {
        info.filters.isEmpty ? nil : info.filters.map(\.name).joined(separator: "+")
    }

    // MARK: - raw

    /// The `raw` var dataframe, when the file has `raw`.
    public func rawVars() throws(AnnDataError) -> DataFrameReader? {
        guard let rawVarPath else { return nil }
        return try DataFrameReader(reader: reader, path: rawVarPath)
    }

    private func rawVarCount() throws(AnnDataError) -> Int {
        guard let raw = try rawVars() else {
            throw reader.fail(.notAnnData, "/raw/var", "raw/X present without raw/var")
        }
        return try raw.rowCount()
    }

    // MARK: - Summary

    /// Everything `inspect` reports, from metadata only.
    public func summary() throws(AnnDataError) -> FileSummary {
        var layers: [MatrixInfo] = []
        var x: MatrixInfo?
        var rawX: MatrixInfo?
        for name in try matrixNames() {
            let info = try matrixInfo(name)
            if name == "X" { x = info } else if name == "raw/X" { rawX = info } else { layers.append(info) }
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        var raw: FileSummary.Raw?
        if let rawVars = try rawVars() {
            raw = FileSummary.Raw(nVars: try rawVars.rowCount(), x: rawX)
        }
        return FileSummary(
            schemaVersion: FileSummary.currentSchemaVersion, file: path, sizeBytes: size ?? 0,
            encodingVersion: encodingVersion, nObs: nObs, nVars: nVars, x: x, layers: layers, raw: raw,
            obsIndex: obs.indexName, varIndex: vars.indexName,
            obs: try obs.columnNames.map { (name) throws(AnnDataError) in try obs.info(name) },
            vars: try vars.columnNames.map { (name) throws(AnnDataError) in try vars.info(name) })
    }
}

/// The stable, documented JSON of `sctrial-plan inspect --json` (see docs/inspect-json.md).
public struct FileSummary: Sendable, Codable, Equatable {
    public static let currentSchemaVersion = 1

    public struct Raw: Sendable, Codable, Equatable {
        public let nVars: Int
        public let x: MatrixInfo?
        enum CodingKeys: String, CodingKey { case nVars = "n_vars", x = "X" }
    }

    public let schemaVersion: Int
    public let file: String
    public let sizeBytes: Int
    public let encodingVersion: String?
    public let nObs: Int
    public let nVars: Int
    public let x: MatrixInfo?
    public let layers: [MatrixInfo]
    public let raw: Raw?
    public let obsIndex: String
    public let varIndex: String
    public let obs: [ColumnInfo]
    public let vars: [ColumnInfo]

    enum CodingKeys: String, CodingKey {
        case file, layers, raw, obs
        case schemaVersion = "schema_version", sizeBytes = "size_bytes", encodingVersion = "encoding_version"
        case nObs = "n_obs", nVars = "n_vars", x = "X", obsIndex = "obs_index", varIndex = "var_index", vars = "var"
    }

    /// Absent elements are written as `null` rather than left out, so scripts can rely on every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
        try container.encode(file, forKey: .file)
        try container.encode(sizeBytes, forKey: .sizeBytes)
        try container.encode(encodingVersion, forKey: .encodingVersion)
        try container.encode(nObs, forKey: .nObs)
        try container.encode(nVars, forKey: .nVars)
        try container.encode(x, forKey: .x)
        try container.encode(layers, forKey: .layers)
        try container.encode(raw, forKey: .raw)
        try container.encode(obsIndex, forKey: .obsIndex)
        try container.encode(varIndex, forKey: .varIndex)
        try container.encode(obs, forKey: .obs)
        try container.encode(vars, forKey: .vars)
    }
}
