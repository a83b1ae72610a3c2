import AnnData
import Foundation

/// What identifies the planned input beyond size and mtime: a hash of the obs and var names, the
/// obs column names and the shape, storage and nnz of the matrices a run reads. A file rewritten
/// with the same size and a restored mtime but other cells, genes or values layout is refused.
public enum InputFingerprint {
    public static func compute(path: String, matrices: [String]) throws -> String {
        do {
            let file = try AnnDataFile(path: path)
            var hasher = SHA256()
            hasher.update("shape \(file.nObs) \(file.nVars)\n")
            hasher.update("obs columns \(file.obs.columnNames.joined(separator: "\u{1f}"))\n")
            for name in try file.obs.index() { hasher.update(name); hasher.update("\u{1f}") }
            hasher.update("\n")
            for name in try file.vars.index() { hasher.update(name); hasher.update("\u{1f}") }
            hasher.update("\n")
            for name in Set(matrices).sorted() {
                let info = try file.matrixInfo(name)
                hasher.update("matrix \(info.name) \(info.format.rawValue) \(info.dtype.rawValue) \(info.nRows) \(info.nCols) \(info.nnz)\n")
            }
            return hasher.finish()
        } catch {
            throw OrchestrationError("\(error)")
        }
    }
}
