/// Everything that can be wrong with an input file, each naming the file and the HDF5 path at fault,
/// so that a user sees one line that says where to look.
public struct AnnDataError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case fileMissing, zarrStore, notHDF5, unreadable, notAnnData, unsupportedEncoding, missingFilter,
             corruptSparse, shapeMismatch, missingElement, wrongType, budget
    }
    public let kind: Kind
    public let file: String
    public let path: String
    public let detail: String

    public init(_ kind: Kind, file: String, path: String, _ detail: String) {
        self.kind = kind
        self.file = file
        self.path = path
        self.detail = detail
    }

    public var description: String {
        path.isEmpty ? "\(file): \(detail)" : "\(file): \(path): \(detail)"
    }
}
