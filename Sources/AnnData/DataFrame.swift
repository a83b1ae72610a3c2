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
    /// anndata ≥ 0.7 writes a group of columns; anndata < 0.7 wrote one compound dataset (a numpy
    /// record array) with categories kept elsewhere as `<column>_categories`.
    enum Layout {
        case group
        case records(fields: [H5Reader.CompoundField], categoriesGroup: String)
    }

    let reader: H5Reader
    let layout: Layout
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
        switch reader.kind(of: path) {
        case .group:
            layout = .group
        case .dataset:
            guard let fields = try reader.compoundFields(path) else {
                throw reader.fail(.notAnnData, path, "expected a dataframe (a group, or a record array from anndata < 0.7)")
            }
            guard let index = fields.first(where: { $0.name == "index" }) ?? fields.first(where: \.isString) else {
                throw reader.fail(.notAnnData, path, "record array without a string index field")
            }
            // anndata 0.6 kept obs/var categories in uns, raw.var's in raw.cat.
            layout = .records(fields: fields, categoriesGroup: path == "/raw.var" ? "/raw.cat" : "/uns")
            indexName = index.name
            columnNames = fields.map(\.name).filter { $0 != index.name }
            return
        default:
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
        // The usual string index as read: no per-row optional to wrap and unwrap.
        if case .string(let names) = values.values { return names }
        return values.labels().map { $0 ?? "" }
    }

    /// The UTF-8 bytes of each row name of `index()`, in order, without a String per row: what a
    /// fingerprint of 10⁵-10⁶ cell names hashes.
    public func forEachIndexName(_ body: (UnsafeRawBufferPointer) -> Void) throws(AnnDataError) {
        let element = memberPath(indexName)
        if case .group = layout, reader.kind(of: element) == .dataset {
            let encoding = try reader.stringAttribute(element, "encoding-type")
            let version = try reader.stringAttribute(element, "encoding-version")
            let info = try reader.datasetInfo(element)
            if encoding == nil || version == "0.2.0" && (encoding == "array" || encoding == "string-array"),
               try reader.referencedPath(element, "categories") == nil, info.isString, info.shape.count == 1 {
                try reader.requireFilters(info)
                return try reader.forEachStoredString(element, body)
            }
        }
        for var name in try index() { name.withUTF8 { body(UnsafeRawBufferPointer($0)) } }
    }

    /// Number of rows, from the index dataset's shape (metadata only).
    public func rowCount() throws(AnnDataError) -> Int {
        if case .records = layout { return try reader.compoundRowCount(path) }
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
        let values: ColumnValues
        if case .records(let fields, let categoriesGroup) = layout {
            guard let field = fields.first(where: { $0.name == name }) else {
                throw reader.fail(.missingElement, element, "no such field")
            }
            values = try recordValues(field, categoriesGroup: categoriesGroup)
        } else {
            values = try readValues(element)
        }
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
        if case .records(let fields, let categoriesGroup) = layout {
            guard let field = fields.first(where: { $0.name == name }) else {
                throw reader.fail(.missingElement, element, "no such column")
            }
            let dtype = field.isString ? "string" : field.elementType?.rawValue ?? "unknown"
            if let levelsPath = legacyCategoriesPath(field, categoriesGroup) {
                let levels = try categoryLevels(levelsPath)
                return ColumnInfo(name: name, kind: .categorical, dtype: dtype, nCategories: levels.count,
                                  categories: levels.labels, ordered: false)
            }
            let kind: ColumnKind = field.isString ? .string : field.elementType == .bool ? .bool : .numeric
            return ColumnInfo(name: name, kind: kind, dtype: dtype, nCategories: nil, categories: nil, ordered: nil)
        }
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
                let ordered = try legacyOrdered(codes: element, levels: levelsPath)
                return ColumnInfo(name: name, kind: .categorical, dtype: Self.dtypeName(data),
                                  nCategories: levels.count, categories: levels.labels, ordered: ordered)
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

    /// An integer field with a `<name>_categories` dataset beside it was a categorical.
    private func legacyCategoriesPath(_ field: H5Reader.CompoundField, _ group: String) -> String? {
        guard field.elementType?.isInteger == true else { return nil }
        let candidate = "\(group)/\(field.name)_categories"
        return reader.kind(of: candidate) == .dataset ? candidate : nil
    }

    private func recordValues(_ field: H5Reader.CompoundField, categoriesGroup: String) throws(AnnDataError) -> ColumnValues {
        if field.isString { return .string(try reader.readCompoundStrings(path, field: field.name)) }
        guard let type = field.elementType else {
            throw reader.fail(.wrongType, "\(path)[\(field.name)]", "unsupported field type")
        }
        if type == .bool { return .bool(try reader.readCompoundBytes(path, field: field.name).map { $0 != 0 }) }
        let numbers = try reader.readCompoundNumbers(path, field: field.name)
        if let levelsPath = legacyCategoriesPath(field, categoriesGroup) {
            let levels = try categoryLevels(levelsPath)
            // Codes come from the file: anything not an Int32 is out of range, not a trap.
            let codes = numbers.map { Int32(exactly: $0) ?? Int32.min }
            try validate(codes: codes, levels: levels.count, element: "\(path)[\(field.name)]")
            return .categorical(Categorical(codes: codes, levels: levels, ordered: false, codeType: type))
        }
        return .numeric(numbers, type)
    }

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
        let ordered = try legacyOrdered(codes: element, levels: levelsPath)
        try validate(codes: codes, levels: levels.count, element: element)
        return Categorical(codes: codes, levels: levels, ordered: ordered, codeType: codeType)
    }

    /// anndata 0.7 put the ordered flag on the `__categories` dataset, not on the codes.
    private func legacyOrdered(codes: String, levels: String) throws(AnnDataError) -> Bool {
        if let flag = try reader.integerArrayAttribute(levels, "ordered") { return flag.first != 0 }
        return (try reader.integerArrayAttribute(codes, "ordered"))?.first.map { $0 != 0 } ?? false
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
        if reader.kind(of: path) == .group {
            // anndata 0.11+ writes the categories of a pandas string-dtype categorical as an
            // encoded element (nullable-string-array), not a plain dataset.
            switch try readValues(path) {
            case .string(let values), .nullableString(let values, _): return .strings(values)
            case .numeric(let values, let type): return .numbers(values, type)
            case .nullableInteger(let values, _, let type): return .numbers(values.map(Double.init), type)
            default: throw reader.fail(.wrongType, path, "unsupported category element")
            }
        }
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
