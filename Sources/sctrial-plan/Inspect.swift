import AnnData
import ArgumentParser
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe an .h5ad file: shape, matrix storage, obs and var columns.",
        discussion: """
            Reads metadata only (attributes, dataset shapes, category lists), so it is instant \
            whatever the file size. For X, each layer and raw/X it reports the storage (dense, \
            csr, csc), value dtype, stored entries (nnz), index dtype, chunk shape and \
            compression; for each obs and var column its kind (categorical, numeric, bool, \
            string, nullable-integer, nullable-boolean, nullable-string), dtype and categories.

            --json prints the stable document described in docs/inspect-json.md \
            (schema_version 1).
            """)

    @Argument(help: "The .h5ad file.")
    var file: String

    @Flag(help: "Print the machine-readable JSON summary instead of text.")
    var json = false

    func run() throws {
        try probeInputFile(file)
        let summary = try reportingFailure {
            try AnnDataFile(path: file).summary()
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(InspectText.render(summary), terminator: "")
        }
    }
}

/// The human-readable form of `inspect`.
enum InspectText {
    static func render(_ summary: FileSummary) -> String {
        var out = "file     \(summary.file) (\(byteCount(summary.sizeBytes)); anndata encoding \(summary.encodingVersion ?? "pre-0.8 layout"))\n"
        out += "shape    \(summary.nObs) obs × \(summary.nVars) vars\n"
        var matrices: [MatrixInfo] = []
        if let x = summary.x { matrices.append(x) } else { out += "X        absent\n" }
        matrices += summary.layers
        if let rawX = summary.raw?.x { matrices.append(rawX) }
        let width = matrices.map(\.name.count).max() ?? 1
        for matrix in matrices {
            out += matrixLine(matrix, nameWidth: max(width, 8)) + "\n"
        }
        if let raw = summary.raw { out += "raw      \(raw.nVars) vars\n" }
        out += columnsBlock("obs", index: summary.obsIndex, columns: summary.obs)
        out += columnsBlock("var", index: summary.varIndex, columns: summary.vars)
        return out
    }

    static func matrixLine(_ m: MatrixInfo, nameWidth: Int) -> String {
        let cells = Double(m.nRows) * Double(m.nCols)
        var parts = [pad(m.name, nameWidth), pad(m.format.rawValue, 5), pad(m.dtype.rawValue, 7),
                     "nnz \(m.nnz)" + (m.format == .dense || cells == 0 ? "" : String(format: " (%.1f%% dense)", 100 * Double(m.nnz) / cells))]
        if let index = m.indexDType { parts.append("indices \(index.rawValue)") }
        parts.append(m.chunks.map { "chunks \($0.map(String.init).joined(separator: "×"))" } ?? "contiguous")
        parts.append(m.compression ?? "uncompressed")
        return parts.joined(separator: "  ")
    }

    static func columnsBlock(_ title: String, index: String, columns: [ColumnInfo]) -> String {
        var out = "\(title) (index '\(index)', \(columns.count) column\(columns.count == 1 ? "" : "s"))\n"
        let width = columns.map(\.name.count).max() ?? 0
        for column in columns {
            var line = "  \(pad(column.name, width))  \(pad(column.kind.rawValue, 16))  \(pad(column.dtype, 7))"
            if let n = column.nCategories, let levels = column.categories {
                let shown = levels.prefix(6).joined(separator: ", ")
                line += "  \(n) categor\(n == 1 ? "y" : "ies")\(column.ordered == true ? " (ordered)" : ""): \(shown)\(n > 6 ? ", …" : "")"
            }
            out += line + "\n"
        }
        return out
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func byteCount(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
