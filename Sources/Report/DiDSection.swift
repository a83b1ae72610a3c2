import Foundation

/// A DiD table (`did_table` or `did_table_by_celltype`): volcano of beta_DiD, p-value histogram
/// and QQ with λ, the top features, and with cell types one panel per cell type.
final class DiDSection: ReportSection {
    /// Per cell type: its own volcano, p-values and discoveries.
    struct Celltype {
        var name: String
        var rows = 0
        var discoveries = 0
        var stratifiedDiscoveries = 0
        var pValues = PValues()
        var volcano = Volcano(columns: 64, rows: 48, highlights: DiDSection.celltypeHighlights)
    }

    /// Points drawn per cell-type volcano (small panels: fewer).
    static let celltypeHighlights = 150

    static let shownColumns = ["feature", "celltype", "beta_DiD", "se_DiD", "p_DiD", "p_DiD_boot", "beta_time", "p_time",
                               "n_units", "FDR_DiD", "FDR_DiD_stratified"]
    let options: ReportOptions
    let feature: Int, beta: Int, p: Int, fdr: Int
    let celltype: Int?, stratified: Int?
    /// The FDR that decides discoveries: the stratified one across cell types when present.
    let fdrName: String
    let shown: [(name: String, index: Int)]
    var rows = 0
    var discoveries = 0
    var pValues = PValues()
    var volcano = Volcano()
    var top: Smallest<TopRow>
    var celltypes: [Celltype] = []
    private var celltypeIndex: [String: Int] = [:]
    private var lastCelltype: (bytes: [UInt8], index: Int)?

    init(header: Header, options: ReportOptions) throws {
        self.options = options
        feature = try header.column("feature")
        beta = try header.column("beta_DiD")
        p = try header.column("p_DiD")
        fdr = try header.column("FDR_DiD")
        celltype = header.optional("celltype")
        stratified = header.optional("FDR_DiD_stratified")
        fdrName = stratified == nil ? "FDR_DiD" : "FDR_DiD_stratified"
        shown = Self.shownColumns.compactMap { name in header.optional(name).map { (name, $0) } }
        top = Smallest(options.top, by: TopRow.before)
    }

    let name = "DiD"

    func consume(_ row: CSVReader.Row, index: Int) {
        rows += 1
        let pValue = row.double(p), effect = row.double(beta)
        let blockFDR = row.double(fdr)
        let q = stratified.map { row.double($0) } ?? blockFDR
        let significant = q < options.alpha
        if significant { discoveries += 1 }
        pValues.add(pValue)
        let label = { () -> String in
            let name = row.string(self.feature)
            return self.celltype.map { "\(name) (\(row.string($0)))" } ?? name
        }
        volcano.add(x: effect, p: pValue, significant: significant, row: index, label: label)
        if pValue >= 0, pValue <= 1, top.wouldKeep(TopRow(p: pValue, row: index, fields: [])) {
            top.add(TopRow(p: pValue, row: index, fields: shown.map { row.string($0.index) }))
        }
        if let column = celltype {
            let k = celltypeSlot(row, column)
            celltypes[k].rows += 1
            if blockFDR < options.alpha { celltypes[k].discoveries += 1 }
            if significant { celltypes[k].stratifiedDiscoveries += 1 }
            celltypes[k].pValues.add(pValue)
            celltypes[k].volcano.add(x: effect, p: pValue, significant: significant, row: index) { row.string(self.feature) }
        }
    }

    /// The cell type's slot; rows come in cell-type blocks, so the last one is checked first.
    private func celltypeSlot(_ row: CSVReader.Row, _ column: Int) -> Int {
        if let last = lastCelltype, row.fieldEquals(column, last.bytes) { return last.index }
        let name = row.string(column)
        let index = celltypeIndex[name] ?? {
            celltypes.append(Celltype(name: name))
            celltypeIndex[name] = celltypes.count - 1
            return celltypes.count - 1
        }()
        lastCelltype = (row.fieldBytes(column), index)
        return index
    }

    var headline: String {
        "\(grouped(rows)) rows, \(grouped(discoveries)) with \(fdrName) &lt; \(options.alpha), λ = \(String(format: "%.4f", pValues.lambda))"
            + (celltype != nil ? ", \(celltypes.count) cell types" : "")
    }

    func render() throws -> [PageBlock] {
        pValues.finish()
        for k in celltypes.indices { celltypes[k].pValues.finish() }
        var blocks: [PageBlock] = []
        let volcanoNote = "<p class=\"note\">Grey: density of all \(grouped(volcano.total)) rows with a p-value (darker = more). Points: the \(volcano.highlights.count) most significant of the \(grouped(volcano.significant)) rows with \(fdrName) &lt; \(options.alpha) (red β &gt; 0, blue β &lt; 0; hover for the feature); the dashed line is the largest p-value among them. Triangles: beyond the axes\(volcano.offScale > 0 ? " (\(volcano.offScale) rows with β or −log10 p infinite)" : "").</p>"
        blocks.append(PageBlock(id: "did", heading: "Difference in differences",
                                html: "<div class=\"figures\">" + Plots.volcano(volcano, id: "did-volcano", title: "Volcano: beta_DiD", xLabel: "beta_DiD")
                                    + pValueFigures(pValues, id: "did-p", what: "p_DiD") + "</div>" + volcanoNote + pValueNote(pValues)))
        blocks.append(PageBlock(id: "top", heading: "Top \(top.count) rows by p_DiD",
                                html: Plots.table(columns: shown.map(\.name), rows: top.sorted.map(\.fields),
                                                  numeric: Set(shown.map(\.name)).subtracting(["feature", "celltype"]), id: "top-table")))
        if !celltypes.isEmpty {
            var html = "<table id=\"celltype-table\"><thead><tr><th>celltype</th><th>rows</th><th>FDR_DiD &lt; \(options.alpha)</th>"
                + (stratified != nil ? "<th>FDR_DiD_stratified &lt; \(options.alpha)</th>" : "") + "<th>λ</th><th>smallest p_DiD</th></tr></thead><tbody>"
            for type in celltypes {
                html += "<tr><td>\(escaped(type.name))</td><td class=\"num\">\(type.rows)</td><td class=\"num\">\(type.discoveries)</td>"
                    + (stratified != nil ? "<td class=\"num\">\(type.stratifiedDiscoveries)</td>" : "")
                    + "<td class=\"num\">\(String(format: "%.4f", type.pValues.lambda))</td><td class=\"num\">\(short(type.pValues.values.first ?? .nan))</td></tr>"
            }
            html += "</tbody></table><div class=\"figures small\">"
            for (k, type) in celltypes.enumerated() {
                html += Plots.volcano(type.volcano, id: "celltype-\(k)", title: type.name, xLabel: "beta_DiD",
                                      width: 300, height: 240, resolution: (48, 32))
            }
            html += "</div><p class=\"note\">One volcano per cell type, as above; points are rows with \(fdrName) &lt; \(options.alpha) (the \(Self.celltypeHighlights) most significant per cell type).</p>"
            blocks.append(PageBlock(id: "celltypes", heading: "By cell type", html: html))
        }
        return blocks
    }
}
