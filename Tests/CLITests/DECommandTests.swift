import Foundation
import Testing

@Suite struct DECommandTests {
    let de = CLI.repository.appendingPathComponent("Tests/Fixtures/de")

    func temporaryRun() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-de-\(UUID().uuidString)").path
    }

    @Test func planThenRunWritesPdexColumnsAndRows() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "de", de.appendingPathComponent("counts_dense_f64.h5ad").path, "--out", run, "--metric", "t-test", "--threads", "1"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let result = try CLI.run(["run", run])
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try String(contentsOfFile: run + "/results.csv", encoding: .utf8).split(separator: "\n")
        let golden = try String(contentsOf: de.appendingPathComponent("counts_dense_f64_ttest.csv"), encoding: .utf8).split(separator: "\n")
        #expect(ours.first == golden.first)
        #expect(ours.count == golden.count)
        for (a, b) in zip(ours.dropFirst(), golden.dropFirst()) {
            let x = a.split(separator: ",", omittingEmptySubsequences: false)
            let y = b.split(separator: ",", omittingEmptySubsequences: false)
            #expect(x[0..<3] == y[0..<3])
            for (u, v) in zip(x[3...], y[3...]) {
                let (p, q) = (Double(u) ?? .nan, Double(v) ?? .nan)
                #expect(p == q || (p.isNaN && q.isNaN) || abs(p - q) <= 1e-9 * abs(q), "\(a) vs \(b)")
            }
        }
        // No temporary file is left beside the results and the parts.
        #expect(try FileManager.default.contentsOfDirectory(atPath: run).sorted()
                == ["logs", "parts", "plan.json", "plan.txt", "results.csv", "summary.json"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: run + "/parts").sorted() == ["00000.done", "00000.lock", "00000.part"])
    }

    @Test func workerThenReduceWritesWhatRunWrites() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(["plan", "de", de.appendingPathComponent("guide_dense_f32.h5ad").path, "--out", run,
                             "--groupby-key", "guide", "--reference", "control"]).status == 0)
        #expect(try CLI.run(["run", run]).status == 0)
        let fromRun = try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv"))
        for name in ["results.csv", "parts/00000.part", "parts/00000.done"] { try FileManager.default.removeItem(atPath: "\(run)/\(name)") }
        let worker = try CLI.run([run, "--shard", "0"], executable: "sctrial-worker")
        #expect(worker.status == 0, "\(worker.stderr)")
        #expect(try CLI.run(["reduce", run]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == fromRun)
        let missing = try CLI.run([run, "--shard", "5"], executable: "sctrial-worker")
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("shard 5 does not exist"))
    }

    @Test(arguments: [
        (["--reference", "not-a-label"], "has no cells labelled 'not-a-label'"),
        (["--groupby-key", "nope"], "/obs/nope: no such column"),
        (["--groups", "X1,X2"], "none of --groups"),
        (["--layer", "missing"], "no such matrix"),
    ])
    func badDesignIsRefusedAtPlanTime(_ extra: [String], _ message: String) throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let result = try CLI.run(["plan", "de", de.appendingPathComponent("counts_csr_f32.h5ad").path, "--out", run] + extra)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: run + "/plan.json"))
    }

    @Test func unknownMetricIsAUsageError() throws {
        let result = try CLI.run(["plan", "de", de.appendingPathComponent("counts_csr_f32.h5ad").path, "--out", temporaryRun(), "--metric", "kolmogorov"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("'kolmogorov' is invalid for '--metric"))
    }

    /// z-scored X (sc.pp.scale): tested as pdex does, fold and percent change flagged as
    /// meaningless on stderr and in summary.json; the numbers are pdex's (golden scaled_wilcoxon_linear).
    @Test func scaledDataIsTestedWithAWarning() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "de", de.appendingPathComponent("scaled_dense_f64.h5ad").path, "--out", run, "--is-log1p", "false"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stderr.contains("warning:") && plan.stderr.contains("/X has negative values (minimum -")
                && plan.stderr.contains("fold_change and percent_change are not meaningful"), "\(plan.stderr)")
        let result = try CLI.run(["run", run])
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as! [String: Any]
        #expect(summary["fold_change_meaningful"] as? Bool == false)
        #expect((summary["warnings"] as? [String])?.first?.contains("not meaningful for negative data") == true)
        let ours = try String(contentsOfFile: run + "/results.csv", encoding: .utf8).split(separator: "\n")
        let golden = try String(contentsOf: de.appendingPathComponent("scaled_wilcoxon_linear.csv"), encoding: .utf8).split(separator: "\n")
        #expect(ours.count == golden.count && ours.count == 289)
        var negativeFolds = 0
        for (a, b) in zip(ours.dropFirst(), golden.dropFirst()) {
            let x = a.split(separator: ",", omittingEmptySubsequences: false), y = b.split(separator: ",", omittingEmptySubsequences: false)
            #expect(x[0..<3] == y[0..<3])
            for (u, v) in zip(x[3...], y[3...]) {
                let (p, q) = (Double(u) ?? .nan, Double(v) ?? .nan)
                #expect(p == q || (p.isNaN && q.isNaN) || abs(p - q) <= 1e-9 * abs(q) + 1e-12, "\(a) vs \(b)")
            }
            if (Double(y[6]) ?? 0) < 0 { negativeFolds += 1 }
        }
        #expect(negativeFolds > 0, "pdex's fold changes of negative means are negative ratios")
    }

    @Test func strictRefusesNegativeValues() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let result = try CLI.run(["plan", "de", de.appendingPathComponent("scaled_dense_f64.h5ad").path, "--out", run, "--strict"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("/X has negative values") && result.stderr.contains("--strict refuses it"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run + "/plan.json"))
    }

    /// Counts: nothing to warn about, and summary.json says the fold changes stand.
    @Test func countsHaveMeaningfulFoldChanges() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "de", de.appendingPathComponent("counts_csr_f32.h5ad").path, "--out", run, "--strict"])
        #expect(plan.status == 0 && !plan.stderr.contains("warning"), "\(plan.stderr)")
        #expect(try CLI.run(["run", run]).status == 0)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as! [String: Any]
        #expect(summary["fold_change_meaningful"] as? Bool == true)
        #expect(summary["warnings"] == nil)
    }

    @Test func inputChangedAfterPlanningIsRefused() throws {
        let run = temporaryRun()
        let copy = run + "-input.h5ad"
        defer { try? FileManager.default.removeItem(atPath: run); try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: de.appendingPathComponent("counts_csr_f32.h5ad").path, toPath: copy)
        #expect(try CLI.run(["plan", "de", copy, "--out", run]).status == 0)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: copy)
        let result = try CLI.run(["run", run])
        #expect(result.status == 2)
        #expect(result.stderr.contains("changed since planning"))
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"))
    }
}
