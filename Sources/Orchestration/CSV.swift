/// CSV as pandas writes it: fields quoted only when they must be, NaN as an empty field, numbers
/// with the shortest text that reads back to the same double.
public enum CSV {
    public static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func number(_ value: Double) -> String {
        if value.isNaN { return "" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return "\(value)"
    }

    public static func line(_ fields: [String]) -> String { fields.joined(separator: ",") + "\n" }
}
