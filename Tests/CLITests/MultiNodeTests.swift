import Foundation
import Testing

/// A Slurm cluster of several hosts on this machine: `SCTRIAL_SLURM_NODES=3 slurm/local-cluster.sh
/// start` (slurmctld and three slurmd, each in its own network and UTS namespace; scripts/test.sh
/// starts one after the main suite and runs only this suite against it). Enabled when the start
/// command's SCTRIAL_SLURM_NODES says three nodes or more; the tests check Slurm agrees.
enum MultiNode {
    static let environment = ProcessInfo.processInfo.environment
    static var enabled: Bool {
        (Int(environment["SCTRIAL_SLURM_NODES"] ?? "") ?? 0) >= 3 && environment["SLURM_CONF"]?.isEmpty == false
    }

    /// The cluster's directory (SLURM_CONF is DIR/etc/slurm.conf), what kill-node and revive-node act on.
    static var directory: String {
        URL(fileURLWithPath: environment["SLURM_CONF"]!).deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// Runs a program (found on PATH) with our environment plus `extra`, less `removing`.
    static func command(_ program: String, _ arguments: [String], extra: [String: String] = [:],
                        removing: Set<String> = []) throws -> CLI.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        process.environment = environment.merging(extra) { $1 }.filter { !removing.contains($0.key) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLI.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                          stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// `slurm/local-cluster.sh SUBCOMMAND ARGS…` on this cluster.
    static func cluster(_ arguments: [String]) throws -> CLI.Result {
        try command("bash", [CLI.repository.appendingPathComponent("slurm/local-cluster.sh").path] + arguments,
                    extra: ["SCTRIAL_SLURM_DIR": directory])
    }

    /// Every node Slurm knows, with its compact state (idle, alloc, down*…).
    static func nodes() throws -> [String: String] {
        let listed = try command("sinfo", ["--noheader", "--Node", "--format=%N %t"])
        guard listed.status == 0 else { throw Failure("sinfo failed: \(listed.stderr)") }
        var nodes: [String: String] = [:]
        for line in listed.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count == 2 { nodes[String(fields[0])] = String(fields[1]) }
        }
        return nodes
    }

    /// Each array task's state and node: "12_3" → ("RUNNING", "node2").
    static func tasks(of job: Int) throws -> [String: (state: String, node: String)] {
        let listed = try command("squeue", ["--noheader", "--array", "--states=all", "--jobs=\(job)", "--format=%i|%T|%N"])
        guard listed.status == 0 else { throw Failure("squeue failed: \(listed.stderr)") }
        var tasks: [String: (state: String, node: String)] = [:]
        for line in listed.stdout.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if fields.count == 3 { tasks[fields[0]] = (fields[1], fields[2]) }
        }
        return tasks
    }

    /// The run's done markers, by shard.
    static func markers(_ run: String) throws -> [Int: [String: Any]] {
        var markers: [Int: [String: Any]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: run + "/parts") where name.hasSuffix(".done") {
            let data = try Data(contentsOf: URL(fileURLWithPath: run + "/parts/" + name))
            if let marker = try JSONSerialization.jsonObject(with: data) as? [String: Any], let shard = marker["shard"] as? Int {
                markers[shard] = marker
            }
        }
        return markers
    }

    /// The sha256 of a file, by coreutils.
    static func sha256(_ path: String) throws -> String {
        let hashed = try command("sha256sum", [path])
        guard hashed.status == 0, let digest = hashed.stdout.split(separator: " ").first else { throw Failure("sha256sum \(path): \(hashed.stderr)") }
        return String(digest)
    }

    /// Each marker names a part that is there with the recorded size and sha256, and no temporary
    /// part is left over.
    static func checkParts(_ run: String, shards: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let markers = try markers(run)
        #expect(Set(markers.keys) == Set(0..<shards), "markers for \(markers.keys.sorted())", sourceLocation: sourceLocation)
        for (shard, marker) in markers {
            let part = run + "/parts/" + String(format: "%05d.part", shard)
            let size = (try FileManager.default.attributesOfItem(atPath: part)[.size] as? NSNumber)?.intValue
            #expect(size == marker["bytes"] as? Int, "shard \(shard): size", sourceLocation: sourceLocation)
            #expect(try sha256(part) == marker["sha256"] as? String, "shard \(shard): sha256", sourceLocation: sourceLocation)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run + "/parts").filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "temporary parts left: \(leftovers)", sourceLocation: sourceLocation)
    }

    /// A copy of a planned run directory (its paths inside are relative), to run the same plan
    /// locally: planning measures the input, so planning again may cut other shards.
    static func copy(_ run: String) throws -> String {
        let copy = run + "-local"
        try FileManager.default.copyItem(atPath: run, toPath: copy)
        return copy
    }

    /// A local `run` of a planned directory: its results.csv and the sha256 of each part.
    static func local(_ run: String) throws -> (table: Data, parts: [Int: String]) {
        let ran = try CLI.run(["run", run, "--jobs", "2"])
        guard ran.status == 0 else { throw Failure("run \(run): \(ran.stderr)") }
        let parts = try markers(run).mapValues { $0["sha256"] as? String ?? "" }
        return (try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")), parts)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

@Suite(.serialized, .enabled(if: MultiNode.enabled, "needs SCTRIAL_SLURM_NODES=3 slurm/local-cluster.sh start (SCTRIAL_SLURM_NODES, SLURM_CONF)"))
struct MultiNodeTests {
    /// Ten DiD shards (two arrays at MaxArraySize 8); each task takes a whole node (2 CPUs).
    static let did = SubmitTests.did + ["--shards", "10"]
    /// GSEA with enough permutations that a shard runs for seconds: a node can be lost mid-shard.
    static let gsea = ["plan", "gsea", GSEACommandTests.trial, "--visits", "V1,V2", "--gene-sets", GSEACommandTests.sets,
                       "--permutations", "200000", "--shards", "6"]
    static let resources = ["--time", "10", "--mem", "1G", "--cpus-per-task", "2"]

    func temporaryRun() -> String { "/var/tmp/sctrial-multinode-\(UUID().uuidString)" }

    @Test func theClusterHasThreeIdleHostsOfTheirOwn() throws {
        #expect(try MultiNode.nodes() == ["node1": "idle", "node2": "idle", "node3": "idle"])
        let status = try MultiNode.cluster(["status"])
        #expect(status.status == 0, "\(status.stderr)")
        for node in ["node1", "node2", "node3"] {
            #expect(status.stdout.contains("\(node) slurmd running (pid "), "\(status.stdout)")
        }
        // Each node's jobs see its own hostname (UTS namespace) and Slurm's name for it.
        // (srun talks to the slurmds, which take munge only: not the JWT meant for slurmctld.)
        let job = try MultiNode.command("srun", ["--nodes=3", "--ntasks-per-node=1", "--mem=64M", "--time=1",
                                                 "/bin/sh", "-c", "echo \"$(hostname) $SLURMD_NODENAME\""], removing: ["SLURM_JWT"])
        #expect(job.status == 0, "\(job.stderr)")
        #expect(job.stdout.split(separator: "\n").sorted() == ["node1 node1", "node2 node2", "node3 node3"], "\(job.stdout)")
    }

    @Test(arguments: ["sbatch", "rest"])
    func shardsSpreadOverTheNodesAndEqualALocalRun(_ via: String) throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.did + ["--out", run]).status == 0)
        let copy = try MultiNode.copy(run)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let started = Date()
        let submitted = try CLI.run(["submit", run, "--via", via, "--wait"] + Self.resources)
        print("multinode (\(via)): 10 DiD shards submitted and reduced in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let markers = try MultiNode.markers(run)
        let hosts = markers.mapValues { $0["host"] as? String ?? "" }
        // The first three tasks start at once, one per node: every node ran a shard.
        #expect(Set(hosts.values) == ["node1", "node2", "node3"], "\(hosts.sorted { $0.key < $1.key })")
        try MultiNode.checkParts(run, shards: 10)
        let reference = try MultiNode.local(copy)
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == reference.table)
        #expect(markers.mapValues { $0["sha256"] as? String ?? "" } == reference.parts)
    }

    /// Loses a node while it computes a shard (kill -9 of everything on it, as a power cut): Slurm
    /// marks it down after SlurmdTimeout and requeues its task, which runs again on another node;
    /// `submit --wait` follows the requeued task instead of counting it failed, the dead worker
    /// leaves no part behind, and the results equal a local run's. Through slurmrestd only (the
    /// wait is the same code for both clients; each costs ~2 minutes here).
    @Test(arguments: ["rest"])
    func aNodeLostMidArrayIsRequeuedAndTheRunStillEqualsALocalRun(_ via: String) throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        #expect(try CLI.run(Self.gsea + ["--out", run]).status == 0)
        let copy = try MultiNode.copy(run)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let log = run + ".submit.log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        FileManager.default.createFile(atPath: log, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let submit = Process()
        submit.executableURL = CLI.executable("sctrial-plan")
        submit.arguments = ["submit", run, "--via", via, "--wait"] + Self.resources
        submit.standardOutput = output
        submit.standardError = output
        submit.standardInput = FileHandle.nullDevice
        let started = Date()
        try submit.run()
        defer { if submit.isRunning { submit.terminate() } }

        // The permutation array starts once the DiD prerequisite is reduced; wait for a task that
        // has been running for a moment (its worker is computing), on every node.
        var array: Int?
        var victim: (task: String, node: String)?
        var firstSeen: [String: Date] = [:]
        let deadline = Date().addingTimeInterval(180)
        while victim == nil, Date() < deadline, submit.isRunning {
            Thread.sleep(forTimeInterval: 0.25)
            if array == nil {
                let jobs = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/slurm/jobs.json"))) as? [String: Any]
                array = ((jobs?["submissions"] as? [[String: Any]])?.first?["arrays"] as? [[String: Any]])?.first?["job"] as? Int
                continue
            }
            let running = try MultiNode.tasks(of: array!).filter { $0.value.state == "RUNNING" }
            for task in running.keys where firstSeen[task] == nil { firstSeen[task] = Date() }
            let oldest = firstSeen.filter { running[$0.key] != nil }.min { $0.value < $1.value }
            if Set(running.values.map(\.node)).count == 3, let oldest, Date().timeIntervalSince(oldest.value) > 1 {
                victim = (oldest.key, running[oldest.key]!.node)
            }
        }
        guard let array, let victim else {
            Issue.record("no permutation task ran on all three nodes within 180 s: \(String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self))")
            return
        }
        let shard = Int(victim.task.split(separator: "_")[1])!  // one array from offset 0
        let killed = try MultiNode.cluster(["kill-node", victim.node])
        #expect(killed.status == 0, "\(killed.stderr)")
        defer {
            let revived = try? MultiNode.cluster(["revive-node", victim.node])
            #expect(revived?.status == 0, "\(revived?.stderr ?? "revive-node did not run")")
        }
        let killedAt = Date()
        print("multinode (\(via)): killed \(victim.node) running task \(victim.task) (shard \(shard)) \(String(format: "%.1f", killedAt.timeIntervalSince(started))) s after submitting")
        // The worker died mid-shard: no part and no marker for it, at most a temporary file.
        let partsNow = try FileManager.default.contentsOfDirectory(atPath: run + "/parts")
        let name = String(format: "%05d", shard)
        #expect(!partsNow.contains(name + ".done") && !partsNow.contains(name + ".part"),
                "shard \(shard) was done before its node was killed: make the plan bigger (\(partsNow.sorted()))")

        // Slurm notices, marks the node down and requeues the task: it is pending, not failed.
        var requeued = false
        var sawDown = false
        while submit.isRunning, Date().timeIntervalSince(killedAt) < 120, !requeued {
            Thread.sleep(forTimeInterval: 0.5)
            if try MultiNode.nodes()[victim.node]?.hasPrefix("down") == true { sawDown = true }
            if let state = try MultiNode.tasks(of: array)[victim.task] {
                #expect(!["FAILED", "NODE_FAIL", "CANCELLED"].contains(state.state), "task \(victim.task) \(state.state)")
                if state.state == "PENDING" || (state.state == "RUNNING" && state.node != victim.node) { requeued = true }
            }
        }
        #expect(sawDown || requeued, "\(victim.node) was never marked down")
        #expect(requeued, "task \(victim.task) was not requeued")
        print("multinode (\(via)): \(victim.node) down and task \(victim.task) requeued \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s after the kill")

        let waitUntil = Date().addingTimeInterval(360)
        while submit.isRunning, Date() < waitUntil { Thread.sleep(forTimeInterval: 0.5) }
        let text = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: log))) ?? Data(), as: UTF8.self)
        guard !submit.isRunning else {
            Issue.record("submit --wait still running 6 minutes after the kill: \(text)")
            return
        }
        print("multinode (\(via)): submit --wait returned \(String(format: "%.1f", Date().timeIntervalSince(started))) s after submitting")
        #expect(submit.terminationStatus == 0, "\(text)")
        #expect(text.contains("results.csv written"), "\(text)")

        // The requeued shard ran again, elsewhere; Slurm counts the restart.
        let markers = try MultiNode.markers(run)
        let rerunHost = markers[shard]?["host"] as? String
        #expect(rerunHost != nil && rerunHost != victim.node && ["node1", "node2", "node3"].contains(rerunHost!), "shard \(shard) ran on \(rerunHost ?? "nothing")")
        let shown = try MultiNode.command("scontrol", ["show", "job", victim.task])
        #expect(shown.stdout.contains("Restarts=1"), "\(shown.stdout)")
        #expect(shown.stdout.contains("JobState=COMPLETED"), "\(shown.stdout)")
        try MultiNode.checkParts(run, shards: 6)
        let localStarted = Date()
        let reference = try MultiNode.local(copy)
        print("multinode (\(via)): the same plan ran locally in \(String(format: "%.1f", Date().timeIntervalSince(localStarted))) s")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/results.csv")) == reference.table)
        #expect(markers.mapValues { $0["sha256"] as? String ?? "" } == reference.parts)
    }
}
