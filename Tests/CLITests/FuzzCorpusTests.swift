import Foundation
import Testing

/// A time-bounded sample of the committed fuzz corpus (`tools/fuzz/make_corpus.py`, packed in
/// `Tests/Fixtures/fuzz/corpus.tar.xz`) through every command, as `tools/fuzz/run_corpus.py` runs
/// the whole of it: no signal, no hang, no exit 0 on a file the manifest marks corrupt for that
/// command, a valid file accepted, and every failure one `error:` line with exit code 2.
@Suite(.serialized) struct FuzzCorpusTests {
    struct Entry: Decodable {
        let base: String
        let mutation: String
        let kind: String
        let corrupt: String
        let mustFail: [String]
        enum CodingKeys: String, CodingKey { case base, mutation, kind, corrupt, mustFail = "must_fail" }
    }

    struct Manifest: Decodable { let files: [String: Entry] }

    struct Outcome {
        let status: Int32?
        let signal: Int32?
        let seconds: Double
        let stderr: String
    }

    /// Runs the built executable with a hard timeout (SIGKILL): nil status and signal is a hang.
    static func run(_ arguments: [String], timeout: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = CLI.executable("sctrial-plan")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SCTRIAL_PROBE_TIMEOUT"] = "5"
        process.environment = environment
        let err = Pipe()
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = err
        let start = ContinuousClock.now
        try process.run()
        let pid = process.processIdentifier
        let killed = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killed)
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killed.cancel()
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let hung = seconds >= timeout && process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
        return Outcome(status: hung || process.terminationReason == .uncaughtSignal ? nil : process.terminationStatus,
                       signal: hung || process.terminationReason != .uncaughtSignal ? nil : process.terminationStatus,
                       seconds: seconds, stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Unpacks the corpus (or the named files of it) into a fresh directory.
    static func unpack(_ names: [String] = []) throws -> URL {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-corpus-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-xJf", CLI.repository.appendingPathComponent("Tests/Fixtures/fuzz/corpus.tar.xz").path, "-C", work.path] + names
        try tar.run()
        tar.waitUntilExit()
        try #require(tar.terminationStatus == 0)
        return work
    }

    /// Defects that used to trap, segfault or hang, each with the line it now gives.
    @Test(arguments: [
        ("s-csr-x-shape-attr-int64-max.h5ad", "/X: shape attribute 9223372036854775807×9223372036854775807 is not a matrix shape"),
        ("s-csc-x-shape-attr-negative.h5ad", "/X: shape attribute -5×40 is not a matrix shape"),
        ("s-csr-x-indices-duplicate-in-major.h5ad", "/X/indices: row 0 stores column 4 twice (entry 1)"),
        ("s-csr-obs-note-heap-index-bad.h5ad", "/obs/note: string 2's global heap reference names object 60000, which its global heap collection (address 72712) does not hold (damaged variable-length string)"),
        ("s-csr-obs-index-huge-string-length.h5ad", "/obs/_index: string 3's global heap reference has length 2147483647 but its global heap object holds 8 bytes (damaged variable-length string)"),
        ("s-csr-obs-codes-out-of-range.h5ad", "/obs/visit/codes: categorical code 9 outside 0..<2"),
    ])
    func formerCrashGivesItsLine(_ name: String, _ line: String) throws {
        let work = try Self.unpack([name])
        defer { try? FileManager.default.removeItem(at: work) }
        let outcome = try Self.run(["validate", "--all", work.appendingPathComponent(name).path], timeout: 20)
        #expect(outcome.status == 2)
        #expect(outcome.stderr == "sctrial-plan: error: \(work.appendingPathComponent(name).path): \(line)\n")
    }

    /// Damage libhdf5 1.10.8 reads without an error (HDF5 2.0 refuses each), each with the line
    /// `validate --all` now gives: heap references inside gzip chunks and in attributes, a
    /// length that disagrees with its heap object, a damaged attribute datatype, attribute and
    /// object headers outside what anndata reads, chunk B-tree keys off the chunk grid.
    @Test(arguments: [
        ("b-csr-gzip-flip055.h5ad", "/obs/_index: string 139's global heap reference names object 32, which its global heap collection (address 2048) does not hold (damaged variable-length string)"),
        ("b-dense-gzip-flip135.h5ad", "/obs/participant_id@encoding-type: string 0's global heap reference points at a global heap collection that is missing or damaged (address 16827; damaged variable-length string)"),
        ("b-dense-flip108.h5ad", "/obs/_index: string 99's global heap reference has length 0 but its global heap object holds 8 bytes (damaged variable-length string)"),
        ("b-csr-flip017.h5ad", "/@encoding-version: string 0 reads as \"0\" through its datatype but \"0.1.0\" from the heap (damaged datatype)"),
        ("b-csr-flip060.h5ad", "/obs/target_gene/codes: attributes cannot be read (can't decode attribute dataspace: wrong version number in dataspace message)"),
        ("b-csr-zero00.h5ad", "/: the file's objects cannot be walked after /X/indptr (can't deserialize object header prefix: bad object header version number)"),
        ("b-csr-flip082.h5ad", "/X/data: chunk B-tree key 2 at 6848 has offset 8589936273 in dimension 0, not on the chunk grid (bad coordinate offset)"),
        ("b-csr-gzip-flip022.h5ad", "/X/data: chunk B-tree key 0 at 6848 has offset 17179869184 in dimension 0, not on the chunk grid (bad coordinate offset)"),
    ])
    func formerlyAcceptedDamageGivesItsLine(_ name: String, _ line: String) throws {
        try formerCrashGivesItsLine(name, line)
    }

    @Test func sampleOfTheCorpusNeverCrashesHangsOrAcceptsDamage() throws {
        let work = try Self.unpack()
        defer { try? FileManager.default.removeItem(at: work) }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: work.appendingPathComponent("manifest.json")))
        // Bases first (their acceptance is checked too), then a fixed shuffle of the mutants.
        var generator = SplitMix(seed: 20261203)
        let names = manifest.files.keys.sorted()
        let bases = names.filter { manifest.files[$0]!.kind == "base" }
        let mutants = names.filter { manifest.files[$0]!.kind != "base" }.shuffled(using: &generator)
        let deadline = ContinuousClock.now + .seconds(45)
        var filesRun = 0, runs = 0
        var failures: [String] = []
        for name in bases + mutants where ContinuousClock.now < deadline {
            let entry = manifest.files[name]!
            let path = work.appendingPathComponent(name).path
            let runDir = work.appendingPathComponent("run-\(filesRun)").path
            let commands: [(String, [String], String?)] = [
                ("inspect", ["inspect", path], nil),
                ("validate", ["validate", "--all", path], nil),
                ("plan-did", ["plan", "did", path, "--out", runDir + "/did", "--visits", "pre,post", "--shards", "1"], nil),
                ("run-did", ["run", runDir + "/did"], "plan-did"),
                ("plan-de", ["plan", "de", path, "--out", runDir + "/de", "--groupby-key", "target_gene", "--reference", "non-targeting", "--shards", "1"], nil),
                ("run-de", ["run", runDir + "/de"], "plan-de"),
            ]
            var passed: Set<String> = []
            for (command, arguments, needs) in commands {
                if let needs, !passed.contains(needs) { continue }
                let outcome = try Self.run(arguments, timeout: 20)
                runs += 1
                let label = "\(command) \(name) [\(entry.mutation)]"
                if let signal = outcome.signal { failures.append("\(label): killed by signal \(signal)"); continue }
                guard let status = outcome.status else { failures.append("\(label): hung (\(outcome.seconds) s)"); continue }
                if status == 0 {
                    passed.insert(command)
                    if entry.corrupt == "yes" && entry.mustFail.contains(command) {
                        failures.append("\(label): exit 0 on a corrupt file")
                    }
                    continue
                }
                let errorLines = outcome.stderr.split(separator: "\n").filter { $0.contains("error:") }
                if entry.kind == "base" || (entry.kind == "byte" && entry.corrupt == "no") {
                    failures.append("\(label): a valid file refused: \(errorLines.first ?? "")")
                } else if status != 2 || errorLines.count != 1 {
                    failures.append("\(label): exit \(status) with \(errorLines.count) error lines: \(outcome.stderr.prefix(300))")
                }
            }
            filesRun += 1
        }
        #expect(filesRun >= 20, "only \(filesRun) files in the time budget")
        #expect(failures.isEmpty, "\(failures.count) of \(runs) runs on \(filesRun) files:\n\(failures.joined(separator: "\n"))")
    }
}

/// A small seeded generator, so the sample is the same on every machine.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
