import ArgumentParser
import Foundation
import Orchestration
import Report

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write RUN/report.html: figures and tables of a reduced run, in one self-contained file.",
        discussion: """
            Reads RUN/results.csv once, front to back, in bounded memory (a 16M-row DE table \
            included: the page summarises it, it does not embed it), and the done markers. \
            DiD: a volcano of beta_DiD, the p_DiD histogram and QQ plot with the genomic \
            inflation λ, the top rows and, by cell type, a panel per cell type. DE: discoveries \
            per target, a volcano per selected target, the p_value histogram and QQ plot with λ, \
            the top rows. Every run: the shard timeline, estimated against measured seconds and \
            peak RSS. The page is inline SVG and CSS: no script, nothing fetched; hover a point \
            or a table number for details. Exit 2 when the run is not reduced yet.
            """)

    @Argument(help: "The run directory (reduced: RUN/results.csv exists).")
    var runDirectory: String

    @Option(help: "Rows in the top table (smallest p-values).")
    var top = 20

    @Option(help: ArgumentHelp("DE: the targets that get a volcano, comma-separated (default: the 4 with most discoveries).", valueName: "a,b"))
    var targets: String?

    @Option(help: "Where to write the page (default: RUN/report.html).")
    var out: String?

    func validate() throws {
        if top < 0 { throw ValidationError("--top must be 0 or more") }
        if let targets, targets.split(separator: ",").isEmpty { throw ValidationError("--targets needs at least one target name") }
    }

    func run() throws {
        let run = RunDirectory(runDirectory)
        let options = ReportOptions(top: top, targets: targets.map { $0.split(separator: ",").map(String.init) })
        let terminal = isatty(2) == 1
        let written = try reportingFailure {
            try RunReport.write(run, options: options, output: out.map { URL(fileURLWithPath: $0) }) { line in
                FileHandle.standardError.write(Data(((terminal ? "\r\u{1b}[K" : "") + "sctrial-plan: " + line + (terminal ? "" : "\n")).utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1b}[K".utf8)) }
        FileHandle.standardError.write(Data(String(format: "%@: %@ rows, %.1f KB, %.2f s\n", written.url.path, "\(written.rows)",
                                                   Double(written.bytes) / 1024, written.seconds).utf8))
    }
}
