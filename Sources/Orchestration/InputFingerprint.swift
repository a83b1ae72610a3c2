import Analyses
import AnnData
import Foundation

/// What identifies the planned input beyond size and mtime: a hash of the obs and var names, the
/// obs column names and the shape, storage and nnz of the matrices a run reads. A file rewritten
/// with the same size and a restored mtime but other cells, genes or values layout is refused.
/// An input that is not an h5ad (a ranking for GSEA) is identified by the sha256 of its bytes.
public enum InputFingerprint {
    public static func compute(path: String, identity: InputIdentity = .h5ad, matrices: [String]) throws -> String {
        if identity == .contents { return try SHA256.file(path) }
        do {
            let file = try AnnDataFile(path: path)
            var hasher = SHA256()
            hasher.update("shape \(file.nObs) \(file.nVars)\n")
            hasher.update("obs columns \(file.obs.columnNames.joined(separator: "\u{1f}"))\n")
            // Names joined in a small reused buffer: one digest call per 64 KB, not two per name.
            var joined: [UInt8] = []
            joined.reserveCapacity(1 << 16)
            for frame in [file.obs, file.vars] {
                try frame.forEachIndexName { name in
                    joined.append(contentsOf: name)
                    joined.append(0x1f)
                    if joined.count >= 1 << 16 {
                        joined.withUnsafeBytes { hasher.update($0) }
                        joined.removeAll(keepingCapacity: true)
                    }
                }
                joined.append(UInt8(ascii: "\n"))
            }
            joined.withUnsafeBytes { hasher.update($0) }
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
