import Analyses
import Foundation
import Orchestration

/// One analysis kind's part of the page. It sees every row of results.csv once, in order, then
/// renders; what it keeps in between is bounded (summaries, not rows).
protocol ReportSection: AnyObject {
    /// A data row of results.csv; `index` counts data rows from 0.
    func consume(_ row: CSVReader.Row, index: Int)
    /// The section's blocks, after the last row.
    func render() throws -> [PageBlock]
    /// A line for the page's header: rows, discoveries, λ.
    var headline: String { get }
    /// The analysis's short name for the page's title.
    var name: String { get }
}

/// A titled part of the page (an `<h2>` and its HTML).
struct PageBlock {
    var id: String
    var heading: String
    var html: String
}

/// What the user asked for.
public struct ReportOptions: Sendable {
    /// Rows in the top-features table.
    public var top = 20
    /// DE: the targets that get a volcano (nil: the `defaultVolcanoTargets` with most discoveries).
    public var targets: [String]?
    public var defaultVolcanoTargets = 4
    /// FDR below which a row counts as a discovery.
    public var alpha = 0.05

    public init(top: Int = 20, targets: [String]? = nil) {
        self.top = top
        self.targets = targets
    }
}

/// results.csv's column names; sections find their columns by name, never by position.
struct Header {
    let names: [String]
    let file: String

    func optional(_ name: String) -> Int? { names.firstIndex(of: name) }

    func column(_ name: String) throws -> Int {
        guard let index = optional(name) else {
            throw OrchestrationError("\(file): no column '\(name)' (the header has \(names.joined(separator: ","))); reduce the run again with this version")
        }
        return index
    }
}

/// The section for each analysis kind: adding a kind adds an entry, not a branch in the report.
enum ReportSections {
    /// Made from the header (columns by name), the options and the plan (to check options
    /// against the plan's units before a long pass).
    typealias Maker = @Sendable (Header, ReportOptions, Plan, RunDirectory) throws -> any ReportSection
    static let byKind: [String: Maker] = [
        PlannedDiD.name: { header, options, _, _ in try DiDSection(header: header, options: options) },
        PlannedDE.name: { header, options, plan, _ in
            try DESection(header: header, options: options, plannedTargets: (plan.analysis.value as? PlannedDE)?.targets ?? [])
        },
        PlannedGSEA.name: { header, options, plan, run in try GSEASection(header: header, options: options, plan: plan, run: run) },
    ]
}

/// A row of the top table: its p-value and table position (the order), and the shown fields' text.
struct TopRow {
    var p: Double
    var row: Int
    var fields: [String]

    static func before(_ a: TopRow, _ b: TopRow) -> Bool { a.p < b.p || (a.p == b.p && a.row < b.row) }
}

/// The p-value figures every analysis shows: the histogram and the QQ plot with λ.
func pValueFigures(_ p: PValues, id: String, what: String) -> String {
    Plots.histogram(p, id: "\(id)-hist", title: "\(what) histogram") + Plots.qq(p, id: "\(id)-qq", title: "\(what) QQ")
}

/// How λ was computed (its exact value in `data-lambda`).
func pValueNote(_ p: PValues) -> String {
    "<p class=\"note\" data-lambda=\"\(p.lambda)\">λ = median(χ²₁ quantile of 1 − p) / 0.4549364 over all \(p.values.count) p-values\(p.missing > 0 ? " (\(p.missing) rows without a p-value left out)" : ""); the median is exact (all p-values sorted). The dashed line in the histogram is a uniform distribution's count per bin.</p>"
}

func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (k, character) in digits.enumerated() {
        if k > 0 && (digits.count - k) % 3 == 0 { out += "," }
        out.append(character)
    }
    return (value < 0 ? "-" : "") + out
}
