import Foundation
import Orchestration

/// `sctrial-plan report`: one pass over RUN/results.csv into the plan's analysis section, the
/// shard timeline from the markers, written as one self-contained HTML file (inline SVG and CSS,
/// no script, nothing fetched).
public enum RunReport {
    public struct Written: Sendable {
        public var url: URL
        public var bytes: Int
        public var rows: Int
        public var seconds: Double
    }

    /// Writes the report to `output` (default RUN/report.html) atomically. `progress` receives a
    /// line now and then while a large table is read.
    public static func write(_ run: RunDirectory, options: ReportOptions, output: URL? = nil,
                             progress: ((String) -> Void)? = nil) throws -> Written {
        let started = ContinuousClock.now
        let plan = try run.readPlan()
        let results = run.resultsURL
        guard FileManager.default.fileExists(atPath: results.path) else {
            let partial = FileManager.default.fileExists(atPath: run.partialResultsURL.path) ? " (only results.partial.csv is there)" : ""
            throw OrchestrationError("\(results.path): not there, the run is not reduced yet\(partial); finish it with `sctrial-plan run \(run.path)` or `sctrial-plan reduce \(run.path)`, then make the report")
        }
        guard let maker = ReportSections.byKind[plan.analysis.name] else {
            throw OrchestrationError("\(run.planURL.path): no report for analysis '\(plan.analysis.name)'")
        }
        let reader = try CSVReader(path: results.path)
        var section: (any ReportSection)?
        var rows = 0
        var lastNote = ContinuousClock.now
        try reader.forEachRow { row in
            guard let section else {
                section = try maker(Header(names: (0..<row.count).map(row.string), file: results.path), options, plan, run)
                return
            }
            // A blank line (a trailing one, say) is no row.
            if row.count == 1 && row.spans[0].start == row.spans[0].end { return }
            section.consume(row, index: rows)
            rows += 1
            if rows & 0xFFFF == 0, let progress, ContinuousClock.now - lastNote > .seconds(2) {
                lastNote = ContinuousClock.now
                progress(String(format: "reading %@: %.0f%% (%.2f of %.2f GB, %@ rows)", results.lastPathComponent,
                                100 * Double(reader.consumed) / Double(max(1, reader.size)), Double(reader.consumed) / 1e9,
                                Double(reader.size) / 1e9, grouped(rows)))
            }
        }
        guard let section else { throw OrchestrationError("\(results.path): empty (no header); reduce the run again") }
        var blocks = try section.render()
        blocks.append(ShardTimeline.render(plan, run: run))
        let elapsed = seconds(since: started)
        let page = html(plan: plan, run: run, section: section, blocks: blocks, rows: rows, seconds: elapsed)
        let url = output ?? run.url.appendingPathComponent("report.html")
        try AtomicFile.write(Data(page.utf8), to: url)
        return Written(url: url, bytes: page.utf8.count, rows: rows, seconds: seconds(since: started))
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }

    static func html(plan: Plan, run: RunDirectory, section: any ReportSection, blocks: [PageBlock], rows: Int, seconds: Double) -> String {
        let kind = section.name
        var out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        out += "<title>\(kind) run \(escaped(plan.runID)): sctrial-plan report</title><style>\(style)</style></head><body>"
        out += "<header><h1>\(kind) run \(escaped(plan.runID))</h1><p class=\"headline\">\(section.headline)</p>"
        out += "<p class=\"meta\">input \(escaped(plan.input.path)) (\(grouped(plan.input.nObs)) cells × \(grouped(plan.input.nVars)) genes), planned \(escaped(plan.createdAt)), \(plan.shards.count) shard\(plan.shards.count == 1 ? "" : "s") along \(plan.axis.rawValue); run directory \(escaped(run.path))</p>"
        out += "<nav>" + blocks.map { "<a href=\"#\($0.id)\">\(escaped($0.heading))</a>" }.joined(separator: " · ") + "</nav></header>"
        for block in blocks {
            out += "<section id=\"\(block.id)\"><h2>\(escaped(block.heading))</h2>\(block.html)</section>"
        }
        out += "<footer>sctrial-plan report: \(grouped(rows)) rows of results.csv read in one pass, \(String(format: "%.2f", seconds)) s. Numbers in tables show 4 significant digits; hover for the exact value.</footer></body></html>\n"
        return out
    }

    static let style = """
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0 auto;max-width:1420px;padding:0 20px 30px;background:#fff}
        header{border-bottom:1px solid #d8dde6;padding:14px 0 8px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #eef0f4;padding-bottom:4px}
        .headline{font-size:15px;margin:2px 0}.meta,.note,footer{color:#5b6475;font-size:12.5px}nav a{color:#2458b3;text-decoration:none;font-size:13px}
        .figures{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:flex-start}.chart{background:#fff;overflow:visible}.gsea{display:flex;flex-direction:column;gap:0}
        .chart .title{font-size:13px;font-weight:600;fill:#1d2330}.chart .tick{font-size:11px;fill:#4a5262}.chart .label{font-size:12px;fill:#1d2330}
        .chart .grid{stroke:#eceff4}.chart .frame{fill:none;stroke:#9aa3b2}.chart .zero{stroke:#9aa3b2;stroke-width:.8}
        .chart .cut{stroke:#7a8294;stroke-dasharray:4 3}.chart .diagonal{stroke:#c0392b;stroke-dasharray:4 3}
        .chart .density{fill:#4b5565}.chart .up{fill:#d0342c;fill-opacity:.85}.chart .down{fill:#2166ac;fill-opacity:.85}
        .chart .bar{fill:#5b7db8}.chart .qq{fill:#2d3a4f}.chart .shard{fill:#5b9b6b}.chart .shardpoint{fill:#5b9b6b;fill-opacity:.8}
        .chart .running{fill:none;stroke:#2e7d32;stroke-width:1.5}.chart .hit{stroke:#1d2330;stroke-width:.8}.chart .metric{fill:#9aa3b2}
        table{border-collapse:collapse;font-size:12.5px;margin:6px 0}th,td{padding:3px 9px;border-bottom:1px solid #eef0f4;text-align:left}
        th{background:#f5f7fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
        """
}
