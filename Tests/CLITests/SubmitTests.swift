import Foundation
import Testing

/// `submit`, `status`, `retry` and `cancel` against the real single-node Slurm that scripts/test.sh
/// starts (slurm/local-cluster.sh, MaxArraySize 8). Skipped on a machine without it, required in CI.
enum LocalSlurm {
    static let environment = ProcessInfo.processInfo.environment
    static var enabled: Bool {
        ["SLURM_CONF", "SLURMRESTD_URL", "SLURM_JWT"].allSatisfy { environment[$0]?.isEmpty == false }
            || !["", "0", "false"].contains((environment["CI"] ?? "").lowercased())
    }
}

@Suite(.serialized, .enabled(if: LocalSlurm.enabled)) struct SubmitTests {
    static let environment = LocalSlurm.environment

    /// Runs live in /var/tmp so a slurmd running as root can write there like the caller.
    func temporaryRun() -> String { "/var/tmp/sctrial-submit-\(UUID().uuidString)" }

    func localTable(_ plan: [String]) throws -> Data {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(plan + ["--out", run, "--shards", "1"]).status == 0)
        #expect(try CLI.run(["run", run]).status == 0)
        return try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv"))
    }

    static let did = ["plan", "did", ShardingTests.trial, "--visits", "pre,post", "--by-celltype", "--axis", "features"]
    static let de = ["plan", "de", ShardingTests.deCounts, "--axis", "perturbations"]
    /// GSEA: the DiD prerequisite's arrays and reducer first, the permutation arrays after it.
    static let gsea = ["plan", "gsea", GSEACommandTests.trial, "--visits", "V1,V2", "--gene-sets", GSEACommandTests.sets,
                       "--permutations", "100"]

    @Test(arguments: [("sbatch", did, 10), ("rest", did, 3), ("sbatch", de, 3), ("rest", de, 5), ("sbatch", gsea, 3), ("rest", gsea, 2)])
    func submittedRunsEqualTheLocalExecutor(_ via: String, _ plan: [String], _ shards: Int) throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(plan + ["--out", run, "--shards", String(shards)]).status == 0)
        let submitted = try CLI.run(["submit", run, "--via", via, "--wait", "--time", "10", "--mem", "1G"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == localTable(plan))
        let jobs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/slurm/jobs.json"))) as? [String: Any]
        let arrays = ((jobs?["submissions"] as? [[String: Any]])?.first?["arrays"] as? [[String: Any]]) ?? []
        // MaxArraySize 8 in the test cluster: 10 shards go as two arrays, indices from 0 each.
        #expect(arrays.count == (shards + 7) / 8)
        #expect(arrays.map { $0["offset"] as? Int } == stride(from: 0, to: shards, by: 8).map { $0 })
        let script = try String(contentsOfFile: run + "/slurm/array-offset-0.sbatch", encoding: .utf8)
        #expect(script.contains("#SBATCH --time=10") && script.contains("#SBATCH --mem=1024M"))
        #expect(!script.contains(Self.environment["SLURM_JWT"] ?? "never"), "the token must not reach the run directory")
    }

    @Test func aFailedShardStopsTheReducerAndRetryCompletes() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.de + ["--out", run, "--shards", "4"]).status == 0)
        // A directory where shard 2's lock file goes: that worker cannot lock and exits 75.
        try FileManager.default.createDirectory(atPath: run + "/parts/00002.lock", withIntermediateDirectories: true)
        let failed = try CLI.run(["submit", run, "--wait", "--time", "10", "--mem", "1G"])
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failed.stderr.contains("shard 2: failed"), "\(failed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"), "the reducer must not run")
        let status = try CLI.run(["status", run, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(json?["done"] as? Int == 3)
        #expect(json?["failed"] as? Int == 1)
        try FileManager.default.removeItem(atPath: run + "/parts/00002.lock")
        let retried = try CLI.run(["retry", run, "--wait", "--via", "rest", "--time", "10", "--mem", "1G"])
        #expect(retried.status == 0, "\(retried.stderr)")
        #expect(retried.stderr.contains("resubmitted 1 shard (2)"), "\(retried.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == localTable(Self.de))
    }

    @Test func aPilotShardSizesTheRest() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.de + ["--out", run, "--shards", "3"]).status == 0)
        let submitted = try CLI.run(["submit", run, "--pilot", "--wait"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(submitted.stderr.contains("pilot: shard 0 submitted"))
        let jobs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/slurm/jobs.json"))) as? [String: Any]
        let submissions = jobs?["submissions"] as? [[String: Any]] ?? []
        #expect(submissions.count == 2)
        #expect((submissions.last?["arrays"] as? [[String: Any]])?.first?["shards"] as? [Int] == [1, 2])
        // Sized from the pilot's marker: at least its peak RSS with headroom, never the 2 GB plan default.
        let marker = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/parts/00000.done"))) as? [String: Any]
        let peak = marker?["peak_rss_bytes"] as? Int ?? 0
        let script = try String(contentsOfFile: run + "/slurm/array-offset-1.sbatch", encoding: .utf8)
        let mem = script.split(separator: "\n").first { $0.hasPrefix("#SBATCH --mem=") }.flatMap { Int($0.dropFirst(14).dropLast()) } ?? 0
        #expect(mem >= peak / 1_000_000 && mem < 2000, "\(script)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == localTable(Self.de))
    }

    @Test func cancelStopsTheRunsJobs() throws {
        try #require(Self.environment["SLURM_CONF"] != nil, "CI is set but the local Slurm is not running: use scripts/test.sh")
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.did + ["--out", run, "--shards", "6"]).status == 0)
        // Held behind a never-starting job so nothing runs before the cancel.
        let submitted = try CLI.run(["submit", run, "--max-concurrent", "1", "--time", "10", "--mem", "1G"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let cancelled = try CLI.run(["cancel", run])
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        #expect(cancelled.stderr.contains("cancelled"))
        Thread.sleep(forTimeInterval: 2)
        let status = try CLI.run(["status", run, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect((json?["done"] as? Int ?? 0) < 6)
        #expect(json?["running"] as? Int == 0 && json?["pending"] as? Int == 0, "\(status.stdout)")
        #expect(!FileManager.default.fileExists(atPath: run + "/results.csv"))
    }
}
