/// CSV text as pandas writes it: fields quoted only when needed, NaN empty, shortest round-trip
/// numbers.
public enum CSVText {
    public static func field(_ text: String) -> String {
        // Bytes, not Characters: Character comparison is a string comparison, and this runs per field.
        guard text.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func number(_ value: Double) -> String {
        if value.isNaN { return "" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return "\(value)"
    }
}
