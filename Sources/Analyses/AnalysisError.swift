import AnnData

/// An analysis that cannot run on this input, said in one line that names the file and the
/// column, option or element at fault.
public struct AnalysisError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    /// Input errors from the reader keep their file and HDF5 path.
    public init(_ error: AnnDataError) { message = error.description }

    public var description: String { message }

    /// Runs `body`, keeping analysis errors, turning reader errors into analysis errors, and
    /// naming `path` on anything else.
    static func converting<T>(_ path: String, _ body: () throws -> T) throws(AnalysisError) -> T {
        do {
            return try body()
        } catch let error as AnalysisError {
            throw error
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        } catch {
            throw AnalysisError("\(path): \(error)")
        }
    }
}
