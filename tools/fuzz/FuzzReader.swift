import CHDF5
import Foundation

/// libFuzzer entry point over the reader (built by tools/fuzz/libfuzzer.sh with the AnnData
/// sources in one module): each input is an HDF5 file image, written to a file in /dev/shm
/// (memory-backed; the reader opens paths) and walked as the probe child of `validate --all`
/// walks it (every object: headers, attributes, chunk B-trees, heap references), then
/// every matrix streamed. Swift-side traps in our checks are what this hunts; a crash inside
/// libhdf5 itself is a containment case (the probe turns it into an error) and is kept as a
/// corpus file by the script.
private let imagePath = "/dev/shm/sctrial-fuzz-\(getpid()).h5ad"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(bytes: data, count: size)
    guard FileManager.default.createFile(atPath: imagePath, contents: bytes) else { return 0 }
    do {
        try FileProbe.walk(path: imagePath, everyObject: true) { _ in }
        let file = try AnnDataFile(path: imagePath)
        for name in try file.matrixNames() {
            var blocks = try file.matrix(name, budget: ReadBudget(megabytes: 1)).blocks()
            while try blocks.next() != nil {}
        }
    } catch {
        // A clean AnnDataError is the expected outcome for a damaged image.
    }
    return 0
}
