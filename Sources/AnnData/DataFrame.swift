/// Summary of one obs/var column, from metadata only (plus the categories of a categorical).
public struct ColumnInfo: Sendable, Codable, Equatable {
    public let name: String
    public let kind: ColumnKind
    /// Stored element type: the codes' type for categoricals, `string` for strings.
    public let dtype: String
    public let nCategories: Int?
    public let categories: [String]?
    public let ordered: Bool?

    enum CodingKeys: String, CodingKey {
        case name, kind, dtype, ordered, categories
        case nCategories = "n_categories"
    }

    /// Every key is written, absent ones as `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(kind, forKey: .kind)
        try container.encode(dtype, forKey: .dtype)
        try container.encode(nCategories, forKey: .nCategories)
        try container.encode(categories, forKey: .categories)
        try container.encode(ordered, forKey: .ordered)
    }
}

/// Reads an obs or var dataframe one column at a time, whatever anndata version wrote it.
///
/// Encodings are dispatched on (`encoding-type`, `encoding-version`), as anndata's I/O registry
/// does, so a new encoding is one new case; elements without encoding attributes are read with the
/// pre-0.8 rules (plain datasets, categoricals as codes with a `categories` object reference to
/// `__categories/<name>`).
public struct DataFrameReader {
    let reader: H5Reader
    /// HDF5 path of the dataframe group, e.g. `/obs`.
    public let path: String
    /// Name of the dataset holding the row names.
    public let indexName: String
    /// Column names in `column-order`, index excluded.
    public let columnNames: [String]

    static let supportedVersions: Set<String> = ["0.1.0", "0.2.0"]

    init(reader: H5Reader, path: String) throws(AnnDataError) {
        self.reader = reader
        self.path = path
        guard reader.kind(of: path) == .group else {
            throw reader.fail(.notAnnData, path, reader.exists(path) ? "expected a dataframe group" : "missing (not an AnnData file?)")
        }
        if let type = try reader.stringAttribute(path, "encoding-type") {
            guard type == "dataframe" else {
                throw reader.fail(.unsupportedEncoding, path, "encoding-type '\(type)' where a dataframe was expected")
            }
            let version = try reader.stringAttribute(path, "encoding-version") ?? "0.1.0"
            guard Self.supportedVersions.contains(version) else {
                throw reader.fail(.unsupportedEncoding, path, "dataframe encoding-version '\(version)' is not supported (known: 0.1.0, 0.2.0)")
            }
        }
        guard let index = try reader.stringAttribute(path, "_index") else {
            throw reader.fail(.notAnnData, path, "dataframe has no '_index' attribute")
        }
        indexName = index
        if reader.hasAttribute(path, "column-order") {
            columnNames = try reader.stringArrayAttribute(path, "column-order")
        } else {
            // Very old writers kept no column order: take the members, minus index and bookkeeping.
            columnNames = try reader.members(of: path).filter { $0 != index && $0 != "__categories" }
        }
        for name in columnNames where !reader.exists(memberPath(name)) {
            throw reader.fail(.missingElement, memberPath(name), "listed in column-order but missing")
        }
    }

    func memberPath(_ name: String) -> String { path == "/" ? "/\(name)" : "\(path)/\(name)" }

    /// Row names (the index).
    public func index() throws(AnnDataError) -> [String] {
        let values = try readColumn(named: indexName, expectedCount: nil)
        return values.labels().map { $0 ?? "" }
    }

    /// Number of rows, from the index dataset's shape (metadata only).
    public func rowCount() throws(AnnDataError) -> Int {
        let indexPath = memberPath(indexName)
        if reader.kind(of: indexPath) == .dataset {
            return try reader.datasetInfo(indexPath).shape.first ?? 0
        }
        return try index().count
    }

    /// One column, checked to have `expectedCount` rows.
    public func column(_ name: String, expectedCount: Int? = nil) throws(AnnDataError) -> Column {
        guard columnNames.contains(name) || name == indexName else {
            let known = columnNames.prefix(12).joined(separator: ", ")
            throw reader.fail(.missingElement, memberPath(name), "no such column (columns: \(known)\(columnNames.count > 12 ? ", …" : ""))")
        }
        return try readColumn(named: name, expectedCount: expectedCount)
    }

    private func readColumn(named name: String, expectedCount: Int?) throws(AnnDataError) -> Column {
        let element = memberPath(name)
        let values = try readValues(element)
        let column = Column(name: name, values: values)
        if let expectedCount, column.count != expectedCount {
            throw reader.fail(.shapeMismatch, element, "column has \(column.count) rows but the dataframe has \(expectedCount)")
        }
        return column
    }

    private func readValues(_ element: String) throws(AnnDataError) -> ColumnValues {
        let encoding = try reader.stringAttribute(element, "encoding-type")
        let version = try reader.stringAttribute(element, "encoding-version")
        switch (encoding, version) {
        case (nil, _), ("array", "0.2.0"), ("string-array", "0.2.0"):
            guard reader.kind(of: element) == .dataset else {
                throw reader.fail(.unsupportedEncoding, element, "group without encoding-type where a column was expected")
            }
            if let levelsPath = try reader.referencedPath(element, "categories") {
                return .categorical(try legacyCategorical(codes: element, levels: levelsPath))
            }
            return try plainArray(element)
        case ("categorical", "0.2.0"):
            return .categorical(try categorical(element))
        case ("nullable-integer", "0.1.0"):
            let (values, type) = try integers(element + "/values")
            return .nullableInteger(values, mask: try mask(element, count: values.count), type)
        case ("nullable-boolean", "0.1.0"):
            let values = try booleans(element + "/values")
            return .nullableBoolean(values, mask: try mask(element, count: values.count))
        case ("nullable-string-array", "0.1.0"):
            let values = try reader.readStringDataset(element + "/values")
            return .nullableString(values, mask: try mask(element, count: values.count))
        case (let type?, let version):
            throw reader.fail(.unsupportedEncoding, element, "unsupported encoding-type '\(type)' version '\(version ?? "none")'")
        }
    }

    /// Summary of a column: reads metadata, plus the (small) category list of a categorical.
    public func info(_ name: String) throws(AnnDataError) -> ColumnInfo {
        let element = memberPath(name)
        let encoding = try reader.stringAttribute(element, "encoding-type")
        switch encoding {
        case "categorical":
            let codes = try reader.datasetInfo(element + "/codes")
            let levels = try categoryLevels(element + "/categories")
            let ordered = (try reader.integerArrayAttribute(element, "ordered"))?.first ?? 0
            return ColumnInfo(name: name, kind: .categorical, dtype: codes.elementType?.rawValue ?? "unknown",
                              nCategories: levels.count, categories: levels.labels, ordered: ordered != 0)
        case "nullable-integer", "nullable-boolean", "nullable-string-array":
            let values = try reader.datasetInfo(element + "/values")
            let kind: ColumnKind = encoding == "nullable-integer" ? .nullableInteger
                : encoding == "nullable-boolean" ? .nullableBoolean : .nullableString
            return ColumnInfo(name: name, kind: kind, dtype: Self.dtypeName(values),
                              nCategories: nil, categories: nil, ordered: nil)
        case nil, "array", "string-array":
            guard reader.kind(of: element) == .dataset else {
                throw reader.fail(.unsupportedEncoding, element, "group without encoding-type where a column was expected")
            }
            let data = try reader.datasetInfo(element)
            if let levelsPath = try reader.referencedPath(element, "categories") {
                let levels = try categoryLevels(levelsPath)
                let ordered = (try reader.integerArrayAttribute(element, "ordered"))?.first ?? 0
                return ColumnInfo(name: name, kind: .categorical, dtype: Self.dtypeName(data),
                                  nCategories: levels.count, categories: levels.labels, ordered: ordered != 0)
            }
            let kind: ColumnKind = data.isString ? .string : data.elementType == .bool ? .bool : .numeric
            return ColumnInfo(name: name, kind: kind, dtype: Self.dtypeName(data), nCategories: nil, categories: nil, ordered: nil)
        case let type?:
            let version = try reader.stringAttribute(element, "encoding-version") ?? "none"
            throw reader.fail(.unsupportedEncoding, element, "unsupported encoding-type '\(type)' version '\(version)'")
        }
    }

    static func dtypeName(_ info: H5Reader.DatasetInfo) -> String {
        info.isString ? "string" : info.elementType?.rawValue ?? "unknown"
    }

    // MARK: - Element readers

    private func plainArray(_ element: String) throws(AnnDataError) -> ColumnValues {
        let info = try reader.datasetInfo(element)
        try reader.requireFilters(info)
        guard info.shape.count == 1 else {
            throw reader.fail(.wrongType, element, "column should be 1-D, found shape \(info.shape)")
        }
        if info.isString { return .string(try reader.readStringDataset(element)) }
        guard let type = info.elementType else {
            throw reader.fail(.wrongType, element, "unsupported column element type")
        }
        if type == .bool { return .bool(try booleans(element)) }
        return .numeric(try reader.read(element, as: Double.self), type)
    }

    private func categorical(_ element: String) throws(AnnDataError) -> Categorical {
        let (codes, codeType) = try codesArray(element + "/codes")
        let levels = try categoryLevels(element + "/categories")
        let ordered = (try reader.integerArrayAttribute(element, "ordered"))?.first ?? 0
        try validate(codes: codes, levels: levels.count, element: element + "/codes")
        return Categorical(codes: codes, levels: levels, ordered: ordered != 0, codeType: codeType)
    }

    private func legacyCategorical(codes element: String, levels levelsPath: String) throws(AnnDataError) -> Categorical {
        let (codes, codeType) = try codesArray(element)
        let levels = try categoryLevels(levelsPath)
        let ordered = (try reader.integerArrayAttribute(element, "ordered"))?.first ?? 0
        try validate(codes: codes, levels: levels.count, element: element)
        return Categorical(codes: codes, levels: levels, ordered: ordered != 0, codeType: codeType)
    }

    private func codesArray(_ path: String) throws(AnnDataError) -> ([Int32], ElementType) {
        let info = try reader.datasetInfo(path)
        try reader.requireFilters(info)
        guard let type = info.elementType, type.isInteger else {
            throw reader.fail(.wrongType, path, "categorical codes must be integers")
        }
        return (try reader.read(path, as: Int32.self), type)
    }

    private func validate(codes: [Int32], levels: Int, element: String) throws(AnnDataError) {
        if let bad = codes.first(where: { $0 < -1 || Int($0) >= levels }) {
            throw reader.fail(.corruptSparse, element, "categorical code \(bad) outside 0..<\(levels)")
        }
    }

    private func categoryLevels(_ path: String) throws(AnnDataError) -> CategoryLevels {
        let info = try reader.datasetInfo(path)
        try reader.requireFilters(info)
        if info.isString { return .strings(try reader.readStringDataset(path)) }
        guard let type = info.elementType else {
            throw reader.fail(.wrongType, path, "unsupported category type")
        }
        return .numbers(try reader.read(path, as: Double.self), type)
    }

    private func integers(_ path: String) throws(AnnDataError) -> ([Int64], ElementType) {
        let info = try reader.datasetInfo(path)
        try reader.requireFilters(info)
        guard let type = info.elementType, type.isInteger else {
            throw reader.fail(.wrongType, path, "expected integers")
        }
        return (try reader.read(path, as: Int64.self), type)
    }

    private func booleans(_ path: String) throws(AnnDataError) -> [Bool] {
        let info = try reader.datasetInfo(path)
        try reader.requireFilters(info)
        guard info.elementType != nil else { throw reader.fail(.wrongType, path, "expected booleans") }
        if info.elementType == .bool || info.elementType?.byteSize == 1 {
            return try reader.readBytes(path).map { $0 != 0 }
        }
        return try reader.read(path, as: Double.self).map { $0 != 0 }
    }

    private func mask(_ element: String, count: Int) throws(AnnDataError) -> [Bool] {
        let maskValues = try booleans(element + "/mask")
        guard maskValues.count == count else {
            throw reader.fail(.shapeMismatch, element + "/mask", "mask has \(maskValues.count) entries, values \(count)")
        }
        return maskValues
    }
}
