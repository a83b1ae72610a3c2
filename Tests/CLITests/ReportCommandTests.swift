import Foundation
import Testing

/// `sctrial-plan report` on real runs: the page's numbers against results.csv, λ against an
/// independent computation, self-containment, and the page rendered by headless Chromium.
@Suite struct ReportCommandTests {
    static let trial = CLI.repository.appendingPathComponent("examples/trial_example.h5ad").path
    static let guide = CLI.repository.appendingPathComponent("Tests/Fixtures/de/guide_dense_f32.h5ad").path

    func temporaryRun() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-report-\(UUID().uuidString)").path
    }

    /// Plans and runs, then returns the run directory.
    func reducedRun(_ plan: [String]) throws -> String {
        let run = temporaryRun()
        let planned = try CLI.run(plan + ["--out", run])
        #expect(planned.status == 0, "\(planned.stderr)")
        let ran = try CLI.run(["run", run, "-j", "2"])
        #expect(ran.status == 0, "\(ran.stderr)")
        return run
    }

    @Test func didByCelltypeReportMatchesResults() throws {
        let run = try reducedRun(["plan", "did", Self.trial, "--visits", "pre,post", "--by-celltype", "--shards", "3"])
        defer { try? FileManager.default.removeItem(atPath: run) }
        let made = try CLI.run(["report", run, "--top", "15"])
        #expect(made.status == 0, "\(made.stderr)")
        let html = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        Page.expectSelfContained(html)
        let table = CSV(try String(contentsOfFile: run + "/results.csv", encoding: .utf8))

        // The top table: the 15 smallest p_DiD (ties in table order), every cell as results.csv has it.
        let top = try #require(Page.table(html, id: "top-table"))
        #expect(top.columns == ["feature", "celltype", "beta_DiD", "se_DiD", "p_DiD", "beta_time", "p_time", "n_units", "FDR_DiD", "FDR_DiD_stratified"])
        let expected = table.rows.enumerated().filter { !table.value($0.element, "p_DiD").isEmpty }
            .sorted { (Double(table.value($0.element, "p_DiD"))!, $0.offset) < (Double(table.value($1.element, "p_DiD"))!, $1.offset) }
            .prefix(15).map(\.element)
        #expect(top.rows.count == 15)
        for (shown, row) in zip(top.rows, expected) {
            for (column, cell) in zip(top.columns, shown) {
                #expect(cell.exact == table.value(row, column), "\(column): \(cell) vs \(table.value(row, column))")
                if let value = Double(cell.exact), cell.exact != "" {
                    // The shown number is the exact one to 4 significant digits.
                    #expect(abs(Double(cell.text)! - value) <= 5e-4 * abs(value), "\(cell.text) vs \(cell.exact)")
                }
            }
        }

        // λ over every p_DiD, and per cell type, computed here from results.csv.
        let lambda = try #require(Page.lambda(html))
        let pValues = table.rows.compactMap { Double(table.value($0, "p_DiD")) }
        #expect(abs(lambda - Independent.lambda(pValues)) <= 1e-12 * lambda)
        let celltypes = try #require(Page.table(html, id: "celltype-table"))
        #expect(celltypes.columns == ["celltype", "rows", "FDR_DiD < 0.05", "FDR_DiD_stratified < 0.05", "λ", "smallest p_DiD"])
        #expect(celltypes.rows.map { $0[0].text } == ["B", "CD4_T", "CD8_T", "Mono"])
        for cells in celltypes.rows {
            let rows = table.rows.filter { table.value($0, "celltype") == cells[0].text }
            #expect(Int(cells[1].text) == rows.count)
            #expect(Int(cells[2].text) == rows.filter { (Double(table.value($0, "FDR_DiD")) ?? 1) < 0.05 }.count)
            #expect(Int(cells[3].text) == rows.filter { (Double(table.value($0, "FDR_DiD_stratified")) ?? 1) < 0.05 }.count)
            let own = Independent.lambda(rows.compactMap { Double(table.value($0, "p_DiD")) })
            #expect(abs(Double(cells[4].text)! - own) <= 5e-5, "\(cells[0].text): λ \(cells[4].text) vs \(own)")
        }
        // The headline's discoveries are summary.json's.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as! [String: Any]
        #expect(html.contains("\(summary["discoveries_fdr_0.05"] as! Int) with FDR_DiD_stratified &lt; 0.05"))
        // One volcano per cell type, and the shard timeline from the 3 markers.
        #expect(html.components(separatedBy: "id=\"clip-celltype-").count - 1 == 4)
        #expect(html.contains("3 of 3 shards done"))
        #expect(html.components(separatedBy: "<rect class=\"shard\"").count - 1 == 3)
    }

    @Test func deReportMatchesResults() throws {
        let run = try reducedRun(["plan", "de", Self.guide, "--groupby-key", "guide", "--reference", "control", "--shards", "2"])
        defer { try? FileManager.default.removeItem(atPath: run) }
        let out = run + "/elsewhere.html"
        let made = try CLI.run(["report", run, "--top", "12", "--targets", "KO_Z,KO_A", "--out", out])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run + "/report.html"))
        let html = try String(contentsOfFile: out, encoding: .utf8)
        Page.expectSelfContained(html)
        let table = CSV(try String(contentsOfFile: run + "/results.csv", encoding: .utf8))

        let top = try #require(Page.table(html, id: "top-table"))
        #expect(top.columns == ["target", "feature", "target_mean", "reference_mean", "fold_change", "percent_change", "p_value", "statistic", "fdr"])
        let expected = table.rows.enumerated()
            .sorted { (Double(table.value($0.element, "p_value"))!, $0.offset) < (Double(table.value($1.element, "p_value"))!, $1.offset) }
            .prefix(12).map(\.element)
        #expect(top.rows.count == 12)
        for (shown, row) in zip(top.rows, expected) {
            #expect(zip(top.columns, shown).allSatisfy { $1.exact == table.value(row, $0) }, "\(shown) vs \(row)")
        }
        let lambda = try #require(Page.lambda(html))
        #expect(abs(lambda - Independent.lambda(table.rows.map { Double(table.value($0, "p_value"))! })) <= 1e-12 * lambda)

        // Discoveries per target (the bars' tooltips) and the volcanos of the asked targets, in order.
        var discoveries: [String: Int] = [:]
        for row in table.rows where Double(table.value(row, "fdr"))! < 0.05 { discoveries[table.value(row, "target"), default: 0] += 1 }
        for target in Set(table.rows.map { table.value($0, "target") }) {
            #expect(html.contains("<title>\(target): \(discoveries[target] ?? 0)</title>"), "\(target)")
        }
        let titles = html.components(separatedBy: "<text class=\"title\" x=\"62.0\" y=\"18\">").dropFirst().map { $0.prefix { $0 != "<" } }
        #expect(titles.filter { $0.contains("discoveries") } == ["KO_Z: \(discoveries["KO_Z"] ?? 0) discoveries", "KO_A: \(discoveries["KO_A"] ?? 0) discoveries"])

        let unknown = try CLI.run(["report", run, "--targets", "KO_A,NOPE"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("--targets NOPE: no such target"), "\(unknown.stderr)")
        #expect(unknown.stderr.split(separator: "\n").count == 1)
    }

    static let gsea = ["plan", "gsea", GSEACommandTests.trial, "--visits", "V1,V2", "--gene-sets", GSEACommandTests.sets,
                       "--permutations", "50", "--by-celltype", "--shards", "2"]

    /// GSEA: the sets table is results.csv's rows by |NES| (as results.csv orders each cell type),
    /// and the top sets get a running-sum plot whose hit ticks are the set's genes in the ranking.
    @Test func gseaReportMatchesResults() throws {
        let run = try reducedRun(Self.gsea)
        defer { try? FileManager.default.removeItem(atPath: run) }
        let made = try CLI.run(["report", run, "--top", "10"])
        #expect(made.status == 0, "\(made.stderr)")
        let html = try String(contentsOfFile: run + "/report.html", encoding: .utf8)
        Page.expectSelfContained(html)
        let table = CSV(try String(contentsOfFile: run + "/results.csv", encoding: .utf8))
        let top = try #require(Page.table(html, id: "top-table"))
        #expect(top.columns == ["celltype", "Term", "ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val", "Tag %", "Gene %"])
        let expected = table.rows.enumerated()
            .sorted { (-abs(Double(table.value($0.element, "NES"))!), $0.offset) < (-abs(Double(table.value($1.element, "NES"))!), $1.offset) }
            .prefix(10).map(\.element)
        #expect(top.rows.count == 10)
        for (shown, row) in zip(top.rows, expected) {
            #expect(zip(top.columns, shown).allSatisfy { $1.exact == table.value(row, $0) }, "\(shown) vs \(row)")
        }
        // One enrichment plot per top set, titled with its cell type, term, ES and NES; its hit
        // ticks count the set's genes in that cell type's ranking (Tag %'s denominator).
        let plots = html.components(separatedBy: "<div class=\"gsea\">").dropFirst()
        #expect(plots.count == 6)
        for (plot, row) in zip(plots, expected) {
            #expect(plot.contains("\(table.value(row, "celltype")): \(table.value(row, "Term")): ES"), "\(row)")
            let hits = table.value(row, "Tag %").split(separator: "/").last.map(String.init) ?? ""
            #expect(plot.contains(">\(hits) genes of the set<"), "\(row): \(hits) hits")
        }
    }

    @Test func unreducedRunIsRefusedNamingResults() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(["plan", "de", Self.guide, "--groupby-key", "guide", "--reference", "control", "--out", run]).status == 0)
        let result = try CLI.run(["report", run])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(URL(fileURLWithPath: run).standardizedFileURL.path)/results.csv: not there, the run is not reduced yet"), "\(result.stderr)")
        #expect(result.stderr.contains("sctrial-plan run"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: run + "/report.html"))
    }

    /// Chromium renders both pages with no console message at all (the page has no script, so
    /// any message is an error such as an invalid SVG attribute) and writes a screenshot. Under
    /// CI=true a missing Chromium fails the test instead of skipping it.
    @Test(.enabled(if: Chromium.path != nil || ProcessInfo.processInfo.environment["CI"] == "true",
                   "needs Debian's chromium (scripts/test.sh installs it)"))
    func chromiumRendersWithoutConsoleErrors() throws {
        let chromium = try #require(Chromium.path, "chromium is not installed (apt-get install chromium); CI requires it")
        // The capture works: an invalid SVG attribute shows up as a console line.
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("report-probe-\(UUID().uuidString).html")
        defer { try? FileManager.default.removeItem(at: probe) }
        try Data("<!DOCTYPE html><svg width=\"10\" height=\"10\"><rect width=\"-5\" height=\"1\"/></svg>".utf8).write(to: probe)
        let broken = try Chromium.render(chromium, page: probe.path)
        #expect(broken.console.contains { $0.contains("A negative value is not valid") }, "\(broken.console)")

        let did = try reducedRun(["plan", "did", Self.trial, "--visits", "pre,post", "--by-celltype", "--shards", "2"])
        let de = try reducedRun(["plan", "de", Self.guide, "--groupby-key", "guide", "--reference", "control"])
        let gsea = try reducedRun(Self.gsea)
        defer { for run in [did, de, gsea] { try? FileManager.default.removeItem(atPath: run) } }
        for run in [did, de, gsea] {
            #expect(try CLI.run(["report", run]).status == 0)
            let rendered = try Chromium.render(chromium, page: run + "/report.html")
            #expect(rendered.console.isEmpty, "\(rendered.console)")
            #expect(rendered.png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && rendered.png.count > 20_000, "\(rendered.png.count) bytes")
        }
    }
}

/// Headless Chromium as a test harness: a screenshot and the console, without remote debugging.
enum Chromium {
    static let path: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `--enable-logging=stderr --v=0` prints each console message as an `INFO:CONSOLE` line.
    static func render(_ chromium: String, page: String) throws -> (console: [String], png: Data) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let png = scratch.appendingPathComponent("page.png")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(scratch.path)/profile",
                             "--enable-logging=stderr", "--v=0", "--window-size=1400,2400", "--screenshot=\(png.path)",
                             URL(fileURLWithPath: page).absoluteString]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(log)")
        return (log.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init),
                (try? Data(contentsOf: png)) ?? Data())
    }
}

/// What the test reads back out of the page.
enum Page {
    struct Cell: CustomStringConvertible {
        var text: String
        /// The exact text (a numeric cell's tooltip), else the text.
        var exact: String
        var description: String { "\(text) [\(exact)]" }
    }

    static func expectSelfContained(_ html: String) {
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("src=") && !html.contains("@import"))
        // Every link is to a place in the page.
        #expect(html.components(separatedBy: "href=\"").dropFirst().allSatisfy { $0.hasPrefix("#") })
    }

    static func unescaped(_ text: Substring) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func table(_ html: String, id: String) -> (columns: [String], rows: [[Cell]])? {
        guard let start = html.range(of: "<table id=\"\(id)\">"),
              let end = html.range(of: "</table>", range: start.upperBound..<html.endIndex) else { return nil }
        let body = html[start.upperBound..<end.lowerBound]
        let columns = body.components(separatedBy: "<th>").dropFirst().map { unescaped($0.prefix { $0 != "<" }) }
        let rows = body.components(separatedBy: "<tr>").dropFirst(2).map { row in
            row.components(separatedBy: "<td").dropFirst().map { cell -> Cell in
                let open = cell.prefix { $0 != ">" }
                let text = unescaped(cell.dropFirst(open.count + 1).prefix { $0 != "<" })
                if let title = open.range(of: "title=\"") {
                    return Cell(text: text, exact: unescaped(open[title.upperBound...].prefix { $0 != "\"" }))
                }
                return Cell(text: text, exact: text)
            }
        }
        return (columns, rows)
    }

    static func lambda(_ html: String) -> Double? {
        guard let range = html.range(of: "data-lambda=\"") else { return nil }
        return Double(html[range.upperBound...].prefix { $0 != "\"" })
    }
}

/// results.csv read with a quote-aware split, independently of the report's reader.
struct CSV {
    let columns: [String]
    let rows: [[String]]

    init(_ text: String) {
        let bytes = Array(text.utf8)
        var records: [[String]] = [], record: [String] = [], field: [UInt8] = []
        var quoted = false
        var i = 0
        func endField() { record.append(String(decoding: field, as: UTF8.self)); field = [] }
        while i < bytes.count {
            let byte = bytes[i]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") { field.append(byte); i += 1 } else { quoted = false }
                } else {
                    field.append(byte)
                }
            } else if byte == UInt8(ascii: "\"") {
                quoted = true
            } else if byte == UInt8(ascii: ",") {
                endField()
            } else if byte == UInt8(ascii: "\n") {
                endField()
                records.append(record)
                record = []
            } else {
                field.append(byte)
            }
            i += 1
        }
        if !record.isEmpty || !field.isEmpty { endField(); records.append(record) }
        columns = records.first ?? []
        rows = Array(records.dropFirst())
    }

    func value(_ row: [String], _ column: String) -> String { columns.firstIndex(of: column).map { row[$0] } ?? "" }
}

/// λ = median(χ²₁ of p) / 0.4549364, here from the χ² values themselves (numpy's median).
enum Independent {
    static func lambda(_ p: [Double]) -> Double {
        let chi = p.map(chiSquare).sorted()
        let n = chi.count
        let median = n % 2 == 1 ? chi[n / 2] : (chi[n / 2 - 1] + chi[n / 2]) / 2
        return median / 0.4549364
    }

    /// The x with P(χ²₁ > x) = erfc(√(x/2)) = p, by bisection on x.
    static func chiSquare(_ p: Double) -> Double {
        var (low, high) = (0.0, 2000.0)
        for _ in 0..<300 where high - low > 1e-300 {
            let x = (low + high) / 2
            if x == low || x == high { break }
            if erfc((x / 2).squareRoot()) > p { low = x } else { high = x }
        }
        return (low + high) / 2
    }
}
