import Foundation
import Testing

/// Plan → workers → reduce through the built executables: the same table whatever the shards,
/// and the run directory's promises (markers, atomic parts, refusals, concurrency, resuming).
@Suite struct ShardingTests {
    static let trial = CLI.repository.appendingPathComponent("examples/trial_example.h5ad").path
    static let deCounts = CLI.repository.appendingPathComponent("Tests/Fixtures/de/counts_csr_f32.h5ad").path
    static let deGuides = CLI.repository.appendingPathComponent("Tests/Fixtures/de/guide_dense_f32.h5ad").path

    func temporaryRun() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-shards-\(UUID().uuidString)").path
    }

    /// Plans with `flags`, runs, returns results.csv and plan.txt.
    func planAndRun(_ plan: [String], run: String) throws -> (results: Data, planText: String) {
        let planned = try CLI.run(plan + ["--out", run])
        #expect(planned.status == 0, "\(planned.stderr)")
        let ran = try CLI.run(["run", run, "-j", "2"])
        #expect(ran.status == 0, "\(ran.stderr)")
        return (try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")),
                try String(contentsOfFile: run + "/plan.txt", encoding: .utf8))
    }

    static let analyses: [(name: String, plan: [String], axis: String)] = [
        ("DiD by cell type, features", ["plan", "did", trial, "--visits", "pre,post", "--by-celltype", "--bootstrap", "--n-boot", "49"], "features"),
        ("DiD by cell type, cell types", ["plan", "did", trial, "--visits", "pre,post", "--by-celltype", "--agg", "median"], "celltypes"),
        ("DiD all cells, features", ["plan", "did", trial, "--visits", "pre,post", "--aggregate", "cell"], "features"),
        ("DE, perturbations", ["plan", "de", deCounts, "--metric", "wilcoxon"], "perturbations"),
        ("DE, features", ["plan", "de", deCounts, "--metric", "anderson"], "features"),
        ("DE one-vs-rest, features", ["plan", "de", deGuides, "--groupby-key", "guide", "--reference", "rest", "--metric", "t-test"], "features"),
        ("DE one-vs-rest, perturbations", ["plan", "de", deGuides, "--groupby-key", "guide", "--reference", "rest"], "perturbations"),
    ]

    @Test(arguments: analyses)
    func resultsDoNotDependOnTheShardCount(_ analysis: (name: String, plan: [String], axis: String)) throws {
        var tables: [Int: Data] = [:]
        for shards in [1, 3, 17] {
            let run = temporaryRun()
            defer { try? FileManager.default.removeItem(atPath: run) }
            let (results, text) = try planAndRun(analysis.plan + ["--axis", analysis.axis, "--shards", String(shards)], run: run)
            #expect(text.contains("axis: \(analysis.axis)"), "\(text)")
            tables[shards] = results
            let parts = try FileManager.default.contentsOfDirectory(atPath: run + "/parts").filter { $0.hasSuffix(".done") }
            let planned = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/plan.json"))) as? [String: Any]
            #expect(parts.count == (planned?["shards"] as? [Any])?.count)
            if shards == 17 { #expect(parts.count > 3, "\(analysis.name): only \(parts.count) shards") }
        }
        #expect(tables[1]!.count > 100)
        #expect(tables[3] == tables[1], "\(analysis.name): 3 shards differ from 1")
        #expect(tables[17] == tables[1], "\(analysis.name): 17 shards differ from 1")
    }

    @Test func featureShardsOfACSRFileReadAStagedGeneMajorCopy() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let (_, text) = try planAndRun(["plan", "de", Self.deCounts, "--axis", "features", "--shards", "4"], run: run)
        #expect(text.contains("read path: column range of the staged gene-major copy"))
        #expect(FileManager.default.fileExists(atPath: run + "/staged/matrix.h5"))
        // Planning again there learns from the shards' measured seconds.
        let again = try CLI.run(["plan", "de", Self.deCounts, "--axis", "features", "--shards", "4", "--dry-run", "--out", run])
        #expect(again.stdout.contains("shards measured in this directory's previous run"), "\(again.stdout)")
        let rows = try CLI.run(["plan", "de", Self.deCounts, "--axis", "perturbations", "--shards", "4", "--dry-run", "--out", run + "-dry"])
        #expect(rows.stdout.contains("read path: row subset of the input"))
        #expect(!FileManager.default.fileExists(atPath: run + "-dry"), "--dry-run writes nothing")
    }

    @Test func aCorruptedPartIsRefusedAndNamed() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        _ = try planAndRun(["plan", "de", Self.deCounts, "--shards", "3"], run: run)
        let part = URL(fileURLWithPath: run + "/parts/00001.part")
        var bytes = try Data(contentsOf: part)
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: part)
        let reduce = try CLI.run(["reduce", run])
        #expect(reduce.status == 2)
        #expect(reduce.stderr.contains("shard 1") && reduce.stderr.contains("corrupted"), "\(reduce.stderr)")
        #expect(reduce.stderr.split(separator: "\n").count == 1)
    }

    @Test func missingShardsAreRefusedUnlessPartialIsAsked() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(["plan", "de", Self.deCounts, "--shards", "3", "--axis", "perturbations", "--out", run]).status == 0)
        #expect(try CLI.run([run, "--shard", "0"], executable: "sctrial-worker").status == 0)
        #expect(try CLI.run([run, "--shard", "2"], executable: "sctrial-worker").status == 0)
        let refused = try CLI.run(["reduce", run])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("1 of 3 shards not done (shard 1)"), "\(refused.stderr)")
        let status = try CLI.run(["status", run, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(json?["done"] as? Int == 2)
        #expect(json?["missing"] as? Int == 1)
        // A done shard's rows and seconds are its marker's.
        let marker = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/parts/00002.done"))) as? [String: Any]
        let shard2 = (json?["shards"] as? [[String: Any]])?.first { $0["index"] as? Int == 2 }
        #expect(shard2?["state"] as? String == "done")
        #expect(shard2?["rows"] as? Int == marker?["rows"] as? Int && (marker?["rows"] as? Int ?? 0) > 0)
        #expect(shard2?["seconds"] as? Double == marker?["seconds"] as? Double)
        let partial = try CLI.run(["reduce", run, "--allow-partial"])
        #expect(partial.status == 0, "\(partial.stderr)")
        #expect(partial.stderr.contains("PARTIAL"))
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any]
        #expect(summary?["partial"] as? Bool == true)
        #expect(summary?["missing_shards"] as? [Int] == [1])
        let lines = try String(contentsOfFile: run + "/results.partial.csv", encoding: .utf8).split(separator: "\n")
        // Targets of shards 0 and 2 only: every gene of each.
        #expect((lines.count - 1) % 36 == 0 && lines.count > 1)
        // Running again runs only the missing shard, then reduces.
        let resumed = try CLI.run(["run", run])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("running 1 of 3 shards"), "\(resumed.stderr)")
        #expect(FileManager.default.fileExists(atPath: run + "/results.csv"))
    }

    @Test func aKilledWorkerLeavesNothingCountedAndARerunCompletes() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let (complete, _) = try planAndRun(["plan", "did", Self.trial, "--visits", "pre,post", "--by-celltype", "--shards", "2", "--axis", "celltypes"], run: run)
        for name in ["results.csv", "parts/00000.done", "parts/00000.part"] { try FileManager.default.removeItem(atPath: "\(run)/\(name)") }
        // A worker killed with SIGKILL part-way: whatever it left is a temporary file, never a part with a marker.
        let worker = Process()
        worker.executableURL = CLI.executable("sctrial-worker")
        worker.arguments = [run, "--shard", "0"]
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        usleep(60_000)
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        let done = FileManager.default.fileExists(atPath: run + "/parts/00000.done")
        if !done {
            // A part written by hand without a marker, as a crash between rename and marker would leave.
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: run + "/parts/00000.part"))
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: run + "/parts/.00000.part.99999.tmp"))
            #expect(try CLI.run(["reduce", run]).status == 2)
        }
        let rerun = try CLI.run(["run", run])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == complete)
        #expect(try FileManager.default.contentsOfDirectory(atPath: run + "/parts").filter { $0.hasSuffix(".tmp") }.isEmpty)
    }

    @Test func anInterruptedRunResumesWithOnlyTheMissingShards() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(["plan", "did", Self.trial, "--visits", "pre,post", "--by-celltype", "--bootstrap", "--axis", "features",
                             "--shards", "17", "--out", run]).status == 0)
        let runner = Process()
        runner.executableURL = CLI.executable("sctrial-plan")
        runner.arguments = ["run", run, "-j", "1"]
        let err = Pipe()
        runner.standardError = err
        try runner.run()
        // Interrupt once a shard or two are done (as Ctrl-C does).
        let deadline = Date(timeIntervalSinceNow: 60)
        while Date() < deadline, (try? FileManager.default.contentsOfDirectory(atPath: run + "/parts").filter { $0.hasSuffix(".done") }.count) ?? 0 < 2 {
            usleep(20_000)
        }
        kill(runner.processIdentifier, SIGINT)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        runner.waitUntilExit()
        #expect(runner.terminationStatus == 130, "\(message)")
        #expect(message.contains("interrupted with"), "\(message)")
        let done = try FileManager.default.contentsOfDirectory(atPath: run + "/parts").filter { $0.hasSuffix(".done") }.count
        #expect(done >= 2 && done < 17)
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"))
        let resumed = try CLI.run(["run", run])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("running \(17 - done) of 17 shards (\(done) already done)"), "\(resumed.stderr)")
    }

    @Test func twoWorkersOnOneShardGiveOneResult() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let (complete, _) = try planAndRun(["plan", "did", Self.trial, "--visits", "pre,post", "--shards", "1"], run: run)
        for name in ["results.csv", "parts/00000.done", "parts/00000.part"] { try FileManager.default.removeItem(atPath: "\(run)/\(name)") }
        let workers = (0..<2).map { _ in
            let worker = Process()
            worker.executableURL = CLI.executable("sctrial-worker")
            worker.arguments = [run, "--shard", "0"]
            let err = Pipe()
            worker.standardError = err
            return (worker, err)
        }
        for (worker, _) in workers { try worker.run() }
        var messages: [String] = []
        for (worker, err) in workers {
            messages.append(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            worker.waitUntilExit()
            #expect(worker.terminationStatus == 0)
        }
        #expect(messages.filter { $0.contains("already done") }.count == 1, "\(messages)")
        let reduce = try CLI.run(["reduce", run])
        #expect(reduce.status == 0, "\(reduce.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == complete)
    }

    @Test func aWorkerRefusesAnInputChangedSincePlanning() throws {
        let run = temporaryRun()
        let copy = run + ".h5ad"
        defer { try? FileManager.default.removeItem(atPath: run); try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: Self.deCounts, toPath: copy)
        #expect(try CLI.run(["plan", "de", copy, "--out", run]).status == 0)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: copy)
        let worker = try CLI.run([run, "--shard", "0"], executable: "sctrial-worker")
        #expect(worker.status == 2)
        #expect(worker.stderr.contains("changed since planning"), "\(worker.stderr)")
        let failed = try CLI.run(["status", run])
        #expect(failed.stdout.contains("shard 0: failed: ") && failed.stdout.contains("changed since planning"), "\(failed.stdout)")
        // Another file with the same size and modification time: the fingerprint tells them apart.
        let planned = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/plan.json"))) as? [String: Any]
        let input = planned?["input"] as? [String: Any]
        try FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: CLI.repository.appendingPathComponent("Tests/Fixtures/de/counts_csc_f32.h5ad").path, toPath: copy)
        let size = try FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int
        if size == input?["size_bytes"] as? Int {
            try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: input?["modified"] as? Double ?? 0)], ofItemAtPath: copy)
            let again = try CLI.run([run, "--shard", "0"], executable: "sctrial-worker")
            #expect(again.status == 2)
            #expect(again.stderr.contains("obs/var names or matrix shape differ"), "\(again.stderr)")
        }
    }
}
