import AnnData
import ArgumentParser
import Foundation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read a matrix once, end to end, and check every stored index and value.",
        discussion: """
            Streams X (or the matrices named with --matrix) in blocks within the memory budget, \
            checking that indptr is monotone and within the stored entries, every index is inside \
            the shape, and counting non-finite, negative and non-integer values. Prints the totals \
            and the read throughput. Exit code 2 when the file is structurally broken; \
            non-finite values are reported, and make the exit code 2 with --strict.
            """)

    @Argument(help: "The .h5ad file.")
    var file: String

    @Option(name: .customLong("matrix"), help: "Matrix to read: X, raw/X or a layer name (repeatable; default X, or every matrix with --all).")
    var matrices: [String] = []

    @Flag(help: "Validate every matrix in the file, every obs/var column, and every other object's header, attributes, chunk index and strings.")
    var all = false

    @Option(help: "Memory budget for one block, in MB.")
    var memoryMB = ReadBudget.default.bytes >> 20

    @Flag(help: "Treat non-finite values (NaN, ±inf) as an error.")
    var strict = false

    @Flag(help: "Print JSON instead of text.")
    var json = false

    struct Report: Codable {
        let matrix: MatrixInfo
        let scan: MatrixScan
    }

    func run() throws {
        try probeInputFile(file, everyObject: all)
        let reports = try reportingFailure { () throws -> [Report] in
            let data = try AnnDataFile(path: file)
            if all {
                // --all is the whole file: every obs/var column too, checked against the index
                // (lengths, categorical codes within their categories).
                var frames = [(data.obs, data.nObs), (data.vars, data.nVars)]
                if let raw = try data.rawVars() { frames.append((raw, try raw.rowCount())) }
                for (frame, rows) in frames {
                    _ = try frame.index()
                    for name in frame.columnNames { _ = try frame.column(name, expectedCount: rows) }
                }
            }
            let names = all ? try data.matrixNames() : (matrices.isEmpty ? ["X"] : matrices)
            var reports: [Report] = []
            for name in names {
                let reader = try data.matrix(name, budget: ReadBudget(megabytes: memoryMB))
                reports.append(Report(matrix: reader.info, scan: try MatrixScan.scan(reader)))
            }
            return reports
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
        } else {
            for report in reports {
                let s = report.scan
                let megabytes = Double(s.bytesRead) / 1e6
                print("\(report.matrix.name): \(report.matrix.format.rawValue) \(report.matrix.dtype.rawValue), \(s.storedEntries) stored entries in \(s.blocks) block(s); "
                      + "sum \(s.sum), min \(s.minimum), max \(s.maximum); non-finite \(s.nonFinite), negative \(s.negative), non-integer \(s.nonInteger); "
                      + String(format: "%.1f MB in %.2f s (%.0f MB/s)", megabytes, s.seconds, s.seconds > 0 ? megabytes / s.seconds : 0))
            }
        }
        if strict, let bad = reports.first(where: { $0.scan.nonFinite > 0 }) {
            FileHandle.standardError.write(Data("sctrial-plan: error: \(file): \(bad.matrix.path): \(bad.scan.nonFinite) non-finite values\n".utf8))
            throw ExitCode(2)
        }
    }
}
