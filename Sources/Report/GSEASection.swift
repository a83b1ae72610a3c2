import Analyses
import Foundation
import Orchestration

/// A GSEA table (gseapy's res2d): NES of every tested set, the sets ordered by |NES| with their
/// statistics, and the running-sum (enrichment) plots of the top sets, drawn from the ranking and
/// gene sets the run stored (the same the reducer used).
final class GSEASection: ReportSection {
    struct Row {
        var celltype: String?
        var term: String
        var nes: Double
        var fdr: Double
        var fields: [String]
    }

    static let shownColumns = ["celltype", "Term", "ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val", "Tag %", "Gene %"]
    /// Sets that get an enrichment plot.
    static let plotted = 6
    let options: ReportOptions
    let term: Int, nes: Int, fdr: Int
    let celltype: Int?
    let shown: [(name: String, index: Int)]
    let problems: [PlannedGSEA.Problem]
    let weight: Double
    /// Every row: a GSEA table has one per tested set (per cell type), a few thousand at most.
    var rows: [Row] = []

    init(header: Header, options: ReportOptions, plan: Plan, run: RunDirectory) throws {
        self.options = options
        term = try header.column("Term")
        nes = try header.column("NES")
        fdr = try header.column("FDR q-val")
        celltype = header.optional("celltype")
        shown = Self.shownColumns.compactMap { name in header.optional(name).map { (name, $0) } }
        guard let gsea = plan.analysis.value as? PlannedGSEA else {
            throw OrchestrationError("\(run.planURL.path): not a GSEA plan")
        }
        problems = try gsea.problems(runDirectory: run.url)
        weight = gsea.parameters.weight
    }

    let name = "GSEA"

    func consume(_ row: CSVReader.Row, index: Int) {
        rows.append(Row(celltype: celltype.map { row.string($0) }, term: row.string(term), nes: row.double(nes),
                        fdr: row.double(fdr), fields: shown.map { row.string($0.index) }))
    }

    var headline: String {
        "\(grouped(rows.count)) gene sets tested, \(rows.filter { $0.fdr < options.alpha }.count) with FDR q &lt; \(options.alpha)"
            + (celltype != nil ? ", \(problems.count) cell types" : "")
    }

    func render() throws -> [PageBlock] {
        var blocks: [PageBlock] = []
        let ordered = rows.filter { !$0.nes.isNaN }.sorted { abs($0.nes) > abs($1.nes) }
        let bars = ordered.prefix(30).map { row in
            (label: (row.celltype.map { "\($0): " } ?? "") + row.term, value: Int((abs(row.nes) * 100).rounded()))
        }
        blocks.append(PageBlock(id: "gsea", heading: "Gene sets by |NES|",
                                html: Plots.bars(bars, title: "|NES| × 100 of the top \(bars.count) sets", valueLabel: "|NES| × 100")
                                    + Plots.table(columns: shown.map(\.name), rows: ordered.prefix(options.top).map(\.fields),
                                                  numeric: Set(shown.map(\.name)).subtracting(["celltype", "Term", "Tag %", "Gene %"]),
                                                  id: "top-table")))
        var plots = "<div class=\"figures\">"
        for (k, row) in ordered.prefix(Self.plotted).enumerated() {
            guard let problem = problems.first(where: { $0.block == row.celltype }),
                  let set = problem.sets.first(where: { $0.term == row.term }) else { continue }
            let es = Double(row.fields[shown.firstIndex { $0.name == "ES" }!]) ?? .nan
            plots += GSEAPlot.render(ranked: problem.ranking.values, hits: set.hits.map(Int.init),
                                     term: (row.celltype.map { "\($0): " } ?? "") + row.term, es: es, nes: row.nes,
                                     id: "gsea-\(k)", weight: weight)
        }
        plots += "</div><p class=\"note\">Running enrichment score along the ranked genes (best first), a tick per gene of the set, and the ranking metric, for the \(min(Self.plotted, ordered.count)) sets with the largest |NES|.</p>"
        blocks.append(PageBlock(id: "enrichment", heading: "Enrichment plots", html: plots))
        return blocks
    }
}
