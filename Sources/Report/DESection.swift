import Foundation
import Orchestration

/// A DE table (pdex's columns): discoveries per target, a volcano per selected target, the
/// p-value histogram and QQ with λ over every row, and the top rows.
final class DESection: ReportSection {
    /// Per target: its rows, discoveries and (when it may be drawn) its volcano.
    struct Target {
        var name: String
        var rows = 0
        var discoveries = 0
        var volcano: Volcano?
    }

    static let shownColumns = ["target", "feature", "target_mean", "reference_mean", "fold_change", "percent_change",
                               "p_value", "statistic", "fdr"]
    /// Per-target volcanos are kept for every target until the end (the default choice needs
    /// every target's discoveries): a small grid (12 KB) and a few points each.
    static let targetGrid = (columns: 64, rows: 48), targetHighlights = 200
    let options: ReportOptions
    let target: Int, feature: Int, foldChange: Int, p: Int, fdr: Int
    let shown: [(name: String, index: Int)]
    var rows = 0
    var discoveries = 0
    var pValues = PValues()
    var top: Smallest<TopRow>
    var targets: [Target] = []
    private var targetIndex: [String: Int] = [:]
    private var lastTarget: (bytes: [UInt8], index: Int)?

    /// `plannedTargets`: the plan's targets, against which --targets is checked before the pass.
    init(header: Header, options: ReportOptions, plannedTargets: [String]) throws {
        let unknown = (options.targets ?? []).filter { !Set(plannedTargets).contains($0) }
        guard unknown.isEmpty else {
            throw OrchestrationError("--targets \(unknown.joined(separator: ",")): no such target in this run (its targets are e.g. \(plannedTargets.prefix(3).joined(separator: ", ")))")
        }
        self.options = options
        target = try header.column("target")
        feature = try header.column("feature")
        foldChange = try header.column("fold_change")
        p = try header.column("p_value")
        fdr = try header.column("fdr")
        shown = Self.shownColumns.compactMap { name in header.optional(name).map { (name, $0) } }
        top = Smallest(options.top, by: TopRow.before)
    }

    let name = "DE"

    func consume(_ row: CSVReader.Row, index: Int) {
        rows += 1
        let pValue = row.double(p)
        let significant = row.double(fdr) < options.alpha
        if significant { discoveries += 1 }
        pValues.add(pValue)
        if pValue >= 0, pValue <= 1, top.wouldKeep(TopRow(p: pValue, row: index, fields: [])) {
            top.add(TopRow(p: pValue, row: index, fields: shown.map { row.string($0.index) }))
        }
        let k = targetSlot(row)
        targets[k].rows += 1
        if significant { targets[k].discoveries += 1 }
        if targets[k].volcano != nil {
            let fold = row.double(foldChange)
            // log2 of a fold change of 0 is −∞: counted off-scale, drawn only if significant.
            let x = fold > 0 ? log2(fold) : (fold == 0 ? -Double.infinity : .nan)
            targets[k].volcano!.add(x: x, p: pValue, significant: significant, row: index) { row.string(self.feature) }
        }
    }

    /// The target's slot; pdex's order is target-major, so the last target is checked first.
    private func targetSlot(_ row: CSVReader.Row) -> Int {
        if let last = lastTarget, row.fieldEquals(target, last.bytes) { return last.index }
        let name = row.string(target)
        let index = targetIndex[name] ?? {
            let drawn = options.targets.map { $0.contains(name) } ?? true
            targets.append(Target(name: name, volcano: drawn ? Volcano(columns: Self.targetGrid.columns, rows: Self.targetGrid.rows,
                                                                        highlights: Self.targetHighlights) : nil))
            targetIndex[name] = targets.count - 1
            return targets.count - 1
        }()
        lastTarget = (row.fieldBytes(target), index)
        return index
    }

    var headline: String {
        "\(grouped(rows)) rows, \(grouped(targets.count)) targets, \(grouped(discoveries)) with fdr &lt; \(options.alpha), λ = \(String(format: "%.4f", pValues.lambda))"
    }

    /// Most discoveries first; ties in table order.
    var ranked: [Target] {
        targets.enumerated().sorted { a, b in
            a.element.discoveries > b.element.discoveries || (a.element.discoveries == b.element.discoveries && a.offset < b.offset)
        }.map(\.element)
    }

    func render() throws -> [PageBlock] {
        pValues.finish()
        let ranked = ranked
        // Asked targets were checked against the plan; one without rows has nothing to draw.
        let chosen = options.targets.map { names in names.compactMap { targetIndex[$0].map { targets[$0] } } }
            ?? Array(ranked.prefix(options.defaultVolcanoTargets))
        var blocks: [PageBlock] = []
        let hit = targets.filter { $0.discoveries > 0 }.count
        let shownBars = Array(ranked.prefix(30))
        let bars = Plots.bars(shownBars.map { ($0.name, $0.discoveries) },
                              title: "Discoveries per target (fdr < \(options.alpha)): top \(shownBars.count) of \(grouped(targets.count))",
                              valueLabel: "genes with fdr < \(options.alpha)")
        blocks.append(PageBlock(id: "targets", heading: "Targets",
                                html: "<div class=\"figures\">" + bars + "</div><p class=\"note\">\(grouped(hit)) of \(grouped(targets.count)) targets have at least one discovery; \(grouped(discoveries)) discoveries in all.</p>"))
        var volcanoes = "<div class=\"figures\">"
        for (k, chosenTarget) in chosen.enumerated() {
            guard let volcano = chosenTarget.volcano else { continue }
            volcanoes += Plots.volcano(volcano, id: "target-\(k)", title: "\(chosenTarget.name): \(chosenTarget.discoveries) discoveries",
                                       xLabel: "log2 fold change", width: 420, height: 320, resolution: (64, 48))
        }
        volcanoes += "</div><p class=\"note\">\(options.targets == nil ? "The \(chosen.count) targets with most discoveries (choose with --targets)" : "Targets from --targets"). Grey: density of the target's genes (darker = more); points: the most significant (up to \(Self.targetHighlights)) with fdr &lt; \(options.alpha), red up, blue down, hover for the gene; triangles: beyond the axes (fold change 0 gives −∞).</p>"
        blocks.append(PageBlock(id: "volcanoes", heading: "Volcano per target", html: volcanoes))
        blocks.append(PageBlock(id: "pvalues", heading: "p-values", html: "<div class=\"figures\">" + pValueFigures(pValues, id: "de-p", what: "p_value") + "</div>" + pValueNote(pValues)))
        blocks.append(PageBlock(id: "top", heading: "Top \(top.count) rows by p_value",
                                html: Plots.table(columns: shown.map(\.name), rows: top.sorted.map(\.fields),
                                                  numeric: Set(shown.map(\.name)).subtracting(["target", "feature"]), id: "top-table")))
        return blocks
    }
}
