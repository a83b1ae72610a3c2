import Foundation

/// A ranked gene list in gseapy's final order: values descending, and, where gseapy's unstable
/// sort leaves the order unspecified (equal values), a stable rule of ours: the genes' order in
/// the input (var order for a DiD, line order for a ranking file).
public struct GSEARanking: Sendable, Equatable {
    public let genes: [String]
    public let values: [Double]

    /// Orders `entries` (name, value) by value descending, ties in the given order. NaN and
    /// infinite values are dropped, as sctrial's `_finalize_ranking` and gseapy's `dropna` do.
    public init(ordering entries: [(name: String, value: Double)]) {
        let kept = entries.enumerated().filter { $0.element.value.isFinite }
        let ordered = kept.sorted { a, b in
            a.element.value != b.element.value ? a.element.value > b.element.value : a.offset < b.offset
        }
        genes = ordered.map(\.element.name)
        values = ordered.map(\.element.value)
    }

    /// One DiD result row, as the ranking needs it.
    public struct DiDEntry: Sendable {
        public var feature: String
        public var beta: Double
        public var se: Double
        public var p: Double
        public var units: Double
    }

    /// sctrial `_rank_did_results` + `_finalize_ranking` (GSEA-SEMANTICS §1.3) over DiD rows given
    /// in var order: rows with fewer than `minUnits` units dropped; NaN betas count as 0 (a
    /// failed fit ranks −0.0 and stays in), NaN p as 1, NaN se as 1; the p-value rank is capped
    /// at ±12 by the +1e-12; infinite ranks dropped; a repeated feature keeps its largest |rank|.
    public init(did rows: [DiDEntry], rankBy: GSEAParameters.RankBy, minUnits: Int) {
        var best: [String: (position: Int, value: Double)] = [:]
        var entries: [(name: String, value: Double)] = []
        for row in rows where row.units >= Double(minUnits) {
            let beta = row.beta.isNaN ? 0 : row.beta
            let value: Double
            switch rankBy {
            case .signedLogP:
                // numpy's sign gives +0 for ±0, so a zero or NaN beta ranks 0 × (−log10(…)) = −0.0.
                let sign: Double = beta > 0 ? 1 : (beta < 0 ? -1 : 0)
                value = sign * -log10((row.p.isNaN ? 1 : row.p) + 1e-12)
            case .beta:
                value = beta
            case .tstat:
                value = beta / ((row.se.isNaN ? 1 : row.se) + 1e-12)
            }
            guard value.isFinite else { continue }
            if let previous = best[row.feature] {
                if Swift.abs(value) > Swift.abs(previous.value) {
                    entries[previous.position].value = value
                    best[row.feature] = (previous.position, value)
                }
                continue
            }
            best[row.feature] = (entries.count, value)
            entries.append((row.feature, value))
        }
        self.init(ordering: entries)
    }

    /// A ranking file: `.rnk` (gene TAB value, an optional header line, `#` comments) or CSV with
    /// a header (gene in the first column, the value in the last, as gseapy takes it).
    public static func read(_ path: String) throws(AnalysisError) -> GSEARanking {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AnalysisError("\(path): no such ranking file (or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw AnalysisError("\(path): ranking file is not UTF-8 text") }
        let csv = path.lowercased().hasSuffix(".csv")
        var entries: [(name: String, value: Double)] = []
        var firstLine: [String: Int] = [:]
        var lineNumber = 0
        var sawHeader = false
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if line.allSatisfy(\.isWhitespace) || line.hasPrefix("#") { continue }
            let fields = csv ? CSVRecord.fields(String(line)) : line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 2 else {
                throw AnalysisError("\(path) line \(lineNumber): expected a gene and a value separated by \(csv ? "a comma" : "a tab")")
            }
            let name = fields[0].trimmingCharacters(in: .whitespaces)
            let valueText = fields[fields.count - 1].trimmingCharacters(in: .whitespaces)
            guard let value = Double(valueText) ?? (valueText.isEmpty || valueText.lowercased() == "nan" ? Double.nan : nil) else {
                if entries.isEmpty && !sawHeader { sawHeader = true; continue }
                throw AnalysisError("\(path) line \(lineNumber): '\(valueText)' is not a number")
            }
            if csv && entries.isEmpty && !sawHeader {
                throw AnalysisError("\(path): a CSV ranking needs a header line (gene column first, value column last)")
            }
            if let first = firstLine[name] {
                throw AnalysisError("\(path) line \(lineNumber): gene '\(name)' is ranked twice (first on line \(first)); give each gene once")
            }
            firstLine[name] = lineNumber
            entries.append((name, value))
        }
        let ranking = GSEARanking(ordering: entries)
        guard !ranking.genes.isEmpty else { throw AnalysisError("\(path): the ranking is empty (no gene with a finite value)") }
        return ranking
    }
}

/// Fields of one CSV line as pandas writes them: quoted when needed, `""` inside quotes.
enum CSVRecord {
    static func fields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else {
                            quoted = false
                            if next == "," { fields.append(current); current = "" } else { current.append(next) }
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" && current.isEmpty {
                quoted = true
            } else if character == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
