import AnnData
import ArgumentParser
import Foundation

/// The child side of the metadata probe (see `FileProbe`): not for users.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__probe", abstract: "Internal: walk a file's metadata.",
                                                    shouldDisplay: false)

    @Argument var file: String
    @Flag var everyObject = false

    func run() throws {
        try reportingFailure { try FileProbe.childWalk(path: file, everyObject: everyObject) }
    }
}

/// Walks `file`'s metadata in a child process first, so a file that crashes or hangs libhdf5
/// gives one line and exit 2 instead of taking this process down; `everyObject` walks every
/// object of the file, not only what anndata reads (`validate --all`). `SCTRIAL_PROBE=off`
/// skips it (for measuring what it costs).
func probeInputFile(_ file: String, everyObject: Bool = false) throws {
    let environment = ProcessInfo.processInfo.environment
    guard environment["SCTRIAL_PROBE"] != "off", environment["SCTRIAL_PROBE_CHILD"] == nil,
          FileManager.default.fileExists(atPath: file) else { return }
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    switch FileProbe.run(file: file, executable: executable, arguments: ["__probe", file] + (everyObject ? ["--every-object"] : [])) {
    case .passed:
        return
    case .reported(let status):
        throw ExitCode(status)
    case .failed(let message):
        FileHandle.standardError.write(Data("sctrial-plan: error: \(message)\n".utf8))
        throw ExitCode(FileProbe.badInput)
    }
}
