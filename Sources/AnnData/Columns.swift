/// How an obs/var column is stored, in the vocabulary of `inspect --json`.
public enum ColumnKind: String, Sendable, Codable {
    case categorical, numeric, bool, string
    case nullableInteger = "nullable-integer"
    case nullableBoolean = "nullable-boolean"
    case nullableString = "nullable-string"
}

/// The levels of a categorical column: strings, or numbers (pandas allows numeric categories).
public enum CategoryLevels: Sendable, Equatable {
    case strings([String])
    case numbers([Double], ElementType)

    public var count: Int {
        switch self {
        case .strings(let values): values.count
        case .numbers(let values, _): values.count
        }
    }

    /// Level `index` as text, spelt as pandas prints the category (`str()`): `False`/`True` for
    /// bools, `1.0` for floats, `1` for integers. Arguments name levels this way, and results.csv
    /// writes them so.
    public func label(_ index: Int) -> String {
        switch self {
        case .strings(let values): return values[index]
        case .numbers(let values, let type): return formatNumber(values[index], type)
        }
    }

    public var labels: [String] { (0..<count).map(label) }
}

/// A categorical column: integer codes (-1 = missing) into `levels`.
public struct Categorical: Sendable, Equatable {
    public let codes: [Int32]
    public let levels: CategoryLevels
    public let ordered: Bool
    public let codeType: ElementType
}

/// The values of one obs/var column, typed as stored. Missing values: NaN for floats, code -1 for
/// categoricals, `mask[i] == true` for the nullable kinds.
public enum ColumnValues: Sendable, Equatable {
    case categorical(Categorical)
    case numeric([Double], ElementType)
    case bool([Bool])
    case string([String])
    case nullableInteger([Int64], mask: [Bool], ElementType)
    case nullableBoolean([Bool], mask: [Bool])
    case nullableString([String], mask: [Bool])
}

public struct Column: Sendable, Equatable {
    public let name: String
    public let values: ColumnValues

    public var kind: ColumnKind {
        switch values {
        case .categorical: .categorical
        case .numeric: .numeric
        case .bool: .bool
        case .string: .string
        case .nullableInteger: .nullableInteger
        case .nullableBoolean: .nullableBoolean
        case .nullableString: .nullableString
        }
    }

    public var count: Int {
        switch values {
        case .categorical(let c): c.codes.count
        case .numeric(let v, _): v.count
        case .bool(let v): v.count
        case .string(let v): v.count
        case .nullableInteger(let v, _, _): v.count
        case .nullableBoolean(let v, _): v.count
        case .nullableString(let v, _): v.count
        }
    }

    /// Each row as text, nil where missing: the common currency for grouping by participant,
    /// visit, arm or perturbation whatever the column's storage.
    public func labels() -> [String?] {
        switch values {
        case .categorical(let c):
            let levels = c.levels.labels
            return c.codes.map { $0 >= 0 && Int($0) < levels.count ? levels[Int($0)] : nil }
        case .numeric(let v, let type):
            return v.map { $0.isNaN ? nil : formatNumber($0, type) }
        case .bool(let v):
            return v.map { $0 ? "True" : "False" }
        case .string(let v):
            return v
        case .nullableInteger(let v, let mask, _):
            return zip(v, mask).map { $1 ? nil : String($0) }
        case .nullableBoolean(let v, let mask):
            return zip(v, mask).map { $1 ? nil : ($0 ? "True" : "False") }
        case .nullableString(let v, let mask):
            return zip(v, mask).map { $1 ? nil : $0 }
        }
    }

    /// Each row as a number, nil where missing or where the column holds no numbers.
    public func numbers() -> [Double?]? {
        switch values {
        case .numeric(let v, _): return v.map { $0.isNaN ? nil : $0 }
        case .bool(let v): return v.map { $0 ? 1 : 0 }
        case .nullableInteger(let v, let mask, _): return zip(v, mask).map { $1 ? nil : Double($0) }
        case .nullableBoolean(let v, let mask): return zip(v, mask).map { $1 ? nil : ($0 ? 1 : 0) }
        case .categorical, .string, .nullableString: return nil
        }
    }
}

/// A column's labels as codes into its distinct labels, so grouping cells by participant, visit
/// or arm compares small integers instead of hashing a string per cell. A categorical keeps its
/// own codes (categories that print alike share one level); other kinds are factorized.
public struct CodedLabels: Sendable, Equatable {
    /// Per row, an index into `levels` (-1: missing).
    public let codes: [Int32]
    /// Distinct labels, each once.
    public let levels: [String]

    /// Row `row`'s label, nil where missing.
    public subscript(row: Int) -> String? { codes[row] < 0 ? nil : levels[Int(codes[row])] }

    /// The code of `label`, nil when no level has it.
    public func code(of label: String) -> Int32? { levels.firstIndex(of: label).map { Int32($0) } }

    /// The levels at least one row holds (a categorical may list unused categories).
    public var presentLevels: [String] {
        var seen = [Bool](repeating: false, count: levels.count)
        for code in codes where code >= 0 { seen[Int(code)] = true }
        return levels.indices.filter { seen[$0] }.map { levels[$0] }
    }

    init(codes: [Int32], levels: [String]) {
        self.codes = codes
        self.levels = levels
    }

    /// Codes by distinct label, first appearance first.
    init(labels: some Sequence<String?>) {
        var levels: [String] = []
        var index: [String: Int32] = [:]
        codes = labels.map { label in
            guard let label else { return -1 }
            if let code = index[label] { return code }
            levels.append(label)
            index[label] = Int32(levels.count - 1)
            return Int32(levels.count - 1)
        }
        self.levels = levels
    }
}

extension Column {
    /// `labels()` as codes: a categorical's codes are mapped through its (few) categories, so no
    /// per-row string is made.
    public func coded() -> CodedLabels {
        guard case .categorical(let c) = values else { return CodedLabels(labels: labels()) }
        let distinct = CodedLabels(labels: c.levels.labels)
        // Categories print distinctly as a rule (the readers check codes): then the codes stand.
        if distinct.levels.count == c.levels.count { return CodedLabels(codes: c.codes, levels: distinct.levels) }
        let codes = c.codes.map { $0 >= 0 && Int($0) < distinct.codes.count ? distinct.codes[Int($0)] : -1 }
        return CodedLabels(codes: codes, levels: distinct.levels)
    }
}

/// Formats a stored number as pandas prints a value of that dtype (`str()`): integers without a
/// fraction, bools as `False`/`True`, floats as Python's `repr` (`1.0`, `0.5`, `1e-05`), float32
/// with its own shortest digits as numpy prints them (`0.1`, not `0.10000000149011612`).
func formatNumber(_ value: Double, _ type: ElementType) -> String {
    switch type {
    case .bool:
        return value != 0 ? "True" : "False"
    case .float32:
        let single = Float(value)
        return pythonFloatText(single.magnitude.description, negative: value.sign == .minus, Double(single), float32: true)
    case .float64:
        return pythonFloatText(value.magnitude.description, negative: value.sign == .minus, value, float32: false)
    default:
        if value.isNaN { return "nan" }
        if abs(value) < 9.2e18 { return String(Int64(value)) }
        return String(format: "%.0f", value)
    }
}

/// Python's float `repr` (numpy's `str` of a float32) from Swift's shortest round-trip digits
/// (`shortest`, the magnitude's `description`): positional when the leading digit's decimal
/// exponent is in -4..<16 (float32: when 1e-4 ≤ |x| < 1e6, numpy's rule), else `d.ddde±XX`.
func pythonFloatText(_ shortest: String, negative: Bool, _ value: Double, float32: Bool) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return negative ? "-inf" : "inf" }
    let sign = negative ? "-" : ""
    if value == 0 { return sign + "0.0" }
    let parts = shortest.lowercased().split(separator: "e", maxSplits: 1)
    let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    let mantissa = parts[0].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    var digits = Array(mantissa[0] + (mantissa.count > 1 ? mantissa[1] : ""))
    // value = 0.d₁d₂… × 10^point
    var point = mantissa[0].count + exponent
    while digits.first == "0" { digits.removeFirst(); point -= 1 }
    while digits.last == "0" { digits.removeLast() }
    let leading = point - 1
    let scientific = float32 ? !(abs(value) >= 1e-4 && abs(value) < 1e6) : (leading < -4 || leading >= 16)
    if scientific {
        let rest = digits.dropFirst()
        let power = (leading < 0 ? "-" : "+") + (abs(leading) < 10 ? "0" : "") + String(abs(leading))
        return sign + String(digits[0]) + (rest.isEmpty ? "" : "." + String(rest)) + "e" + power
    }
    if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + String(digits) }
    if point >= digits.count { return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0" }
    return sign + String(digits[..<point]) + "." + String(digits[point...])
}
