import AnnData

/// An analysis that cannot run on this input, said in one line that names the file and the
/// column, option or element at fault.
public struct AnalysisError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    /// Input errors from the reader keep their file and HDF5 path.
    public init(_ error: AnnDataError) { message = error.description }

    public var description: String { message }
}
