import Foundation
import AnnData

/// Where the committed fixtures live (written by tools/fixtures/regenerate.sh).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/h5ad")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static let expected: Expected = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("expected.json"))
        return try! JSONDecoder().decode(Expected.self, from: data)
    }()

    static var fileNames: [String] { expected.files.keys.sorted() }
    static var badFileNames: [String] { expected.errors.keys.sorted() }
}

/// A JSON scalar or array as the fixture generator wrote it.
enum JSONValue: Decodable, Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else { self = .array(try container.decode([JSONValue].self)) }
    }
}

struct Expected: Decodable, Sendable {
    struct Matrix: Decodable, Sendable {
        let format: String
        let dtype: String
        let nnz: Int
        let sum: Double
        let row_sums: [Double]
        let col_sums: [Double]
        let index_dtype: String?
        let chunks: [Int]?
        let compression: String?
    }

    struct Column: Decodable, Sendable {
        let name: String
        let kind: String
        let dtype: String
        let categories: [JSONValue]?
        let ordered: Bool?
        let values: [JSONValue]
        /// Each category as pandas prints it (`str()` in its dtype), checked against anndata's read.
        let labels: [String?]?
    }

    struct File: Decodable, Sendable {
        let writer: String
        let n_obs: Int
        let n_vars: Int
        let obs_names: [String]
        let var_names: [String]
        let matrices: [String: Matrix]
        let obs: [Column]
        let `var`: [Column]
        let raw_var_names: [String]?
    }

    struct Failure: Decodable, Sendable {
        let path: String
        let what: String
    }

    let files: [String: File]
    let errors: [String: Failure]
}

/// Relative closeness for sums accumulated in a different order than numpy's.
func close(_ a: Double, _ b: Double, relative: Double = 1e-12) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN }
    return abs(a - b) <= relative * max(abs(a), abs(b), 1)
}

extension MatrixReader {
    /// The whole matrix (or the requested rows × columns of it; zeros elsewhere) as dense rows,
    /// read through `blocks`: what streaming tests compare storage formats and copies by.
    func denseRows(rows: [Int]? = nil, columns: Range<Int>? = nil) throws -> [[Double]] {
        var matrix = [[Double]](repeating: [Double](repeating: 0, count: info.nCols), count: info.nRows)
        var blocks = try self.blocks(rows: rows, columns: columns)
        while let slab = try blocks.next() {
            slab.forEachEntry { row, column, value in matrix[row][column] += value }
        }
        return matrix
    }
}
