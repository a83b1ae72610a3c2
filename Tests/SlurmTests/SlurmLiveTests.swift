import Foundation
import Testing
@testable import Orchestration

/// The live cluster from `slurm/local-cluster.sh start` (scripts/test.sh starts it). Without it the
/// live tests are skipped on a developer's machine and fail in CI, where it must be running.
enum LiveCluster {
    static let environment = ProcessInfo.processInfo.environment
    static var configured: Bool { ["SLURM_CONF", "SLURMRESTD_URL", "SLURM_JWT"].allSatisfy { environment[$0]?.isEmpty == false } }
    static var inCI: Bool { !["", "0", "false"].contains((environment["CI"] ?? "").lowercased()) }
    static var enabled: Bool { configured || inCI }

    /// False (with a recorded failure) when the cluster is not there.
    static func present() -> Bool {
        if configured { return true }
        Issue.record("""
            CI is set but SLURM_CONF, SLURMRESTD_URL or SLURM_JWT is missing: run the tests through scripts/test.sh, \
            or eval "$(slurm/local-cluster.sh start)" first
            """)
        return false
    }

    /// The cluster's Slurm release ("22.05.8", "24.11.5"), as its scontrol reports it.
    static func release() throws -> String { try SlurmCommandClient().configValue("SLURM_VERSION") }

    /// What a version of the local cluster answers where the versions differ.
    struct Expected {
        /// The REST API version `connect` must pick: the newest the server serves.
        let apiVersion: SlurmRESTClient.APIVersion
        /// The HTTP status of a request whose token slurmctld refuses.
        let refusedTokenStatus: Int
    }

    static func expected() throws -> Expected {
        let release = try release()
        if release.hasPrefix("22.05.") { return Expected(apiVersion: .v0_0_38, refusedTokenStatus: 500) }
        if release.hasPrefix("24.11.") { return Expected(apiVersion: .v0_0_42, refusedTokenStatus: 511) }
        throw SlurmError.invalidRequest("the live tests know Slurm 22.05 and 24.11 (slurm/local-cluster.sh), not \(release)")
    }

    static let fast = SlurmPolling(initialInterval: .milliseconds(250), maximumInterval: .seconds(2), timeout: .seconds(240))

    static func rest(maxArraySize: Int = SlurmArraySplit.defaultMaxArraySize) throws -> SlurmRESTClient {
        try SlurmRESTClient.connect(baseURL: environment["SLURMRESTD_URL"]!, token: environment["SLURM_JWT"]!, maxArraySize: maxArraySize)
    }

    /// A fresh run-like directory with logs/ and out/, on the local disk slurmd shares with us.
    static func scratch(_ name: String) throws -> URL {
        let url = URL(fileURLWithPath: "/tmp/sctrial-slurm-tests/\(name)-\(UUID().uuidString.prefix(8))")
        for sub in ["logs", "out"] {
            try FileManager.default.createDirectory(at: url.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        return url
    }

    /// An executable script in `directory`.
    @discardableResult
    static func script(_ name: String, in directory: URL, _ body: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try ("#!/bin/bash\n" + body + "\n").write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        return url.path
    }

    /// A stand-in for sctrial-worker with the template's calling convention: RUN --shard-offset N.
    /// Appends one line per run to RUN/out/SHARD, so a shard run twice shows.
    static func worker(in directory: URL) throws -> String {
        try script("worker.sh", in: directory, """
            [ "$2" = --shard-offset ] || exit 64
            shard=$(( $3 + SLURM_ARRAY_TASK_ID ))
            echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID" >> "$1/out/$shard"
            """)
    }

    static func lines(_ url: URL) -> [String] {
        ((try? String(contentsOf: url, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static func tasks(_ job: JobID, _ range: ClosedRange<Int>) -> Set<JobID> { Set(range.map { JobID(job.id, task: $0) }) }
}

@Suite(.serialized, .enabled(if: LiveCluster.enabled, "needs slurm/local-cluster.sh (SLURM_CONF, SLURMRESTD_URL, SLURM_JWT)"))
struct SlurmLiveTests {
    @Test func commandClientRunsARenderedShardArrayWithAScrubbedEnvironment() throws {
        guard LiveCluster.present() else { return }
        let run = try LiveCluster.scratch("array")
        defer { try? FileManager.default.removeItem(at: run) }
        // If these leaked into sbatch, the submission would go to a partition that does not exist.
        let client = SlurmCommandClient(environment: LiveCluster.environment.merging(
            ["SBATCH_PARTITION": "no-such-partition", "SLURM_ARRAY_TASK_ID": "999", "SLURM_JOB_ID": "424242"]) { $1 })
        let part = SlurmArrayPart(offset: 10, indices: .range(0...4))
        let request = try SlurmTemplate.shardArrayRequest(name: "sctrial-live-array", run: run.path, worker: [LiveCluster.worker(in: run)],
                                                          part: part, throttle: 2,
                                                          resources: SlurmResources(timeLimitMinutes: 5, memoryMB: 64, cpusPerTask: 1))
        let started = Date()
        let job = try client.submit(request)
        let first = try client.states(of: [job])
        #expect(Set(first.keys) == LiveCluster.tasks(job, 0...4))
        let final = try waitUntilDone(jobs: [job], client: client, polling: LiveCluster.fast)
        print("live: 5-task array \(job) (throttle 2) finished in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")

        #expect(final == Dictionary(uniqueKeysWithValues: (0...4).map { (JobID(job.id, task: $0), JobState.completed) }))
        for task in 0...4 {
            #expect(LiveCluster.lines(run.appendingPathComponent("out/\(10 + task)")) == ["\(job.id) \(task)"])
            #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("logs/slurm-\(job.id)_\(task).out").path))
        }
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("out/9").path))
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("out/15").path))
        // Finished jobs stay visible for MinJobAge: asking again gives the same answer.
        #expect(try client.states(of: [job, JobID(job.id, task: 3)])[JobID(job.id, task: 3)] == .completed)
    }

    @Test func cancellingOneTaskThenTheWholeArray() throws {
        guard LiveCluster.present() else { return }
        let run = try LiveCluster.scratch("cancel")
        defer { try? FileManager.default.removeItem(at: run) }
        let client = SlurmCommandClient()
        let job = try client.submit(SlurmJobRequest(name: "sctrial-live-cancel", script: "#!/bin/bash\nsleep 300\n",
                                                    array: SlurmArraySpec(.range(0...3), throttle: 1),
                                                    resources: SlurmResources(memoryMB: 32), workingDirectory: run.path,
                                                    outputPath: run.path + "/logs/%A_%a.out"))
        let deadline = Date().addingTimeInterval(60)
        while try client.states(of: [JobID(job.id, task: 0)])[JobID(job.id, task: 0)] != .running, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
        }
        try client.cancel(JobID(job.id, task: 0))
        try client.cancel(JobID(job.id, task: 2))
        var states = try client.states(of: [job])
        let settle = Date().addingTimeInterval(30)
        while states[JobID(job.id, task: 0)] != .cancelled || states[JobID(job.id, task: 1)] != .running, Date() < settle {
            Thread.sleep(forTimeInterval: 0.2)
            states = try client.states(of: [job])
        }
        #expect(states[JobID(job.id, task: 0)] == .cancelled)
        #expect(states[JobID(job.id, task: 1)] == .running)   // the throttle let the next one start
        // A task cancelled before it started leaves no record (without accounting): asked for by
        // name it is unknown, and never taken for done.
        #expect(states[JobID(job.id, task: 2)] == nil)
        #expect(try client.states(of: [JobID(job.id, task: 2)]) == [JobID(job.id, task: 2): .unknown])
        #expect(states[JobID(job.id, task: 3)] == .pending)

        try client.cancel(job)
        let final = try waitUntilDone(jobs: [job], client: client, polling: LiveCluster.fast)
        #expect(final == Dictionary(uniqueKeysWithValues: [0, 1, 3].map { (JobID(job.id, task: $0), JobState.cancelled) }))
        try client.cancel(job)   // cancelling a finished job is not an error
        #expect(try client.states(of: [JobID(999_999)]) == [JobID(999_999): .unknown])
    }

    @Test func restClientSubmitsWaitsAndReportsSlurmsErrors() throws {
        guard LiveCluster.present() else { return }
        let run = try LiveCluster.scratch("rest")
        defer { try? FileManager.default.removeItem(at: run) }
        let maxArraySize = try SlurmCommandClient().maxArraySize()
        let client = try LiveCluster.rest(maxArraySize: maxArraySize)
        let expected = try LiveCluster.expected()
        print("live: Slurm \(try LiveCluster.release()), slurmrestd speaks \(client.version.rawValue)")
        #expect(client.version == expected.apiVersion)
        #expect(try client.maxArraySize() == maxArraySize)

        let script = "#!/bin/bash\necho \"$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID\" > \(run.path)/out/$SLURM_ARRAY_TASK_ID\n"
        let started = Date()
        let job = try client.submit(SlurmJobRequest(name: "sctrial-live-rest", script: script, array: SlurmArraySpec(.list([0, 2, 5])),
                                                    resources: SlurmResources(timeLimitMinutes: 5, memoryMB: 64),
                                                    workingDirectory: run.path, outputPath: run.path + "/logs/slurm-%A_%a.out"))
        let final = try waitUntilDone(jobs: [job], client: client, polling: LiveCluster.fast)
        print("live: REST array \(job) (3 tasks) finished in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(final == [JobID(job.id, task: 0): .completed, JobID(job.id, task: 2): .completed, JobID(job.id, task: 5): .completed])
        for task in [0, 2, 5] {
            #expect(LiveCluster.lines(run.appendingPathComponent("out/\(task)")) == ["\(job.id) \(task)"])
        }
        // Both clients see the same thing.
        #expect(try SlurmCommandClient().states(of: [job]) == final)
        #expect(try client.states(of: [JobID(999_999)]) == [JobID(999_999): .unknown])
        // Cancelling a finished array or a job the controller never knew is not an error (22.05:
        // HTTP 500 with error 2021 or 2017; 24.11 v0.0.42: HTTP 200 with them in `status`).
        try client.cancel(job)
        try client.cancel(JobID(job.id, task: 2))
        try client.cancel(JobID(999_999))

        let overLimit = #expect(throws: SlurmError.self) {
            try client.submit(SlurmJobRequest(name: "too-big", script: "#!/bin/bash\ntrue\n", array: SlurmArraySpec(.range(0...maxArraySize)),
                                              workingDirectory: run.path))
        }
        guard case .rejected(_, let messages) = overLimit else {
            Issue.record("expected Slurm's rejection, got \(String(describing: overLimit))")
            return
        }
        #expect(messages.contains { $0.hasPrefix("Invalid job array specification") }, "\(messages)")

        let badToken = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.bm9wZQ"
        let refused = #expect(throws: SlurmError.self) {
            try SlurmRESTClient(baseURL: LiveCluster.environment["SLURMRESTD_URL"]!, token: badToken, version: client.version)
                .states(of: [job])
        }
        // slurmrestd passes the token to slurmctld, which refuses it: 22.05 without a reason (HTTP
        // 500), 24.11 with "Protocol authentication error" (HTTP 511).
        #expect(refused == .unauthorized(url: LiveCluster.environment["SLURMRESTD_URL"]!, status: expected.refusedTokenStatus))
        #expect(refused.map { !$0.description.contains(badToken) && $0.description.contains("scontrol token") } == true)
        // Connecting with it: 22.05's ping fails like any request; 24.11's answers HTTP 200 with
        // slurmctld "DOWN", which connect reports as such.
        let refusedAtConnect = #expect(throws: SlurmError.self) {
            try SlurmRESTClient.connect(baseURL: LiveCluster.environment["SLURMRESTD_URL"]!, token: badToken)
        }
        #expect(refusedAtConnect == (expected.apiVersion == .v0_0_38
            ? .unauthorized(url: LiveCluster.environment["SLURMRESTD_URL"]!, status: 500)
            : .controllerNotResponding(url: LiveCluster.environment["SLURMRESTD_URL"]!)))
        // Without a token at all, slurmrestd itself answers 401.
        #expect(throws: SlurmError.unauthorized(url: LiveCluster.environment["SLURMRESTD_URL"]!, status: 401)) {
            try SlurmRESTClient.connect(baseURL: LiveCluster.environment["SLURMRESTD_URL"]!, token: "")
        }
    }

    @Test func aFailedArrayCancelsItsReducerInsteadOfLeavingItPending() throws {
        guard LiveCluster.present() else { return }
        let command = SlurmCommandClient()
        let rest = try LiveCluster.rest()
        for (label, submitter) in [("sbatch", command as any SlurmClient), ("slurmrestd", rest as any SlurmClient)] {
            let run = try LiveCluster.scratch("dependency")
            defer { try? FileManager.default.removeItem(at: run) }
            let failing = try LiveCluster.script("failing-worker.sh", in: run, "[ \"$SLURM_ARRAY_TASK_ID\" = 1 ] && exit 3\ntouch \"$1/out/$SLURM_ARRAY_TASK_ID\"")
            let planner = try LiveCluster.script("planner.sh", in: run, "[ \"$1\" = reduce ] || exit 64\ntouch \"$2/out/reduced\"")
            let array = try submitter.submit(SlurmTemplate.shardArrayRequest(name: "sctrial-live-fail", run: run.path, worker: [failing],
                                                                             part: SlurmArrayPart(offset: 0, indices: .range(0...2)),
                                                                             resources: SlurmResources(memoryMB: 32)))
            let reducer = try submitter.submit(SlurmTemplate.reduceRequest(name: "sctrial-live-reduce", run: run.path, planner: planner,
                                                                           after: [array], resources: SlurmResources(memoryMB: 32)))
            let started = Date()
            let final = try waitUntilDone(jobs: [array, reducer], client: command, polling: LiveCluster.fast)
            print("live (\(label)): failed array \(array) and reducer \(reducer) settled in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
            #expect(final == [JobID(array.id, task: 0): .completed, JobID(array.id, task: 1): .failed,
                              JobID(array.id, task: 2): .completed, reducer: .cancelled], "\(label)")
            #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("out/reduced").path), "\(label)")
        }

        // And when every task succeeds, the reducer runs after them.
        let run = try LiveCluster.scratch("dependency-ok")
        defer { try? FileManager.default.removeItem(at: run) }
        let planner = try LiveCluster.script("planner.sh", in: run, "[ \"$1\" = reduce ] || exit 64\nls \"$2/out\" | sort -n | tr '\\n' ' ' > \"$2/reduced\"")
        let array = try rest.submit(SlurmTemplate.shardArrayRequest(name: "sctrial-live-ok", run: run.path, worker: [LiveCluster.worker(in: run)],
                                                                    part: SlurmArrayPart(offset: 0, indices: .range(0...2)),
                                                                    resources: SlurmResources(memoryMB: 32)))
        let reducer = try rest.submit(SlurmTemplate.reduceRequest(name: "sctrial-live-reduce", run: run.path, planner: planner, after: [array],
                                                                  resources: SlurmResources(memoryMB: 32)))
        let final = try waitUntilDone(jobs: [array, reducer], client: rest, polling: LiveCluster.fast)
        #expect(final.values.allSatisfy { $0 == .completed } && final.count == 4)
        #expect(LiveCluster.lines(run.appendingPathComponent("reduced")) == ["0 1 2 "])
    }

    @Test func shardsBeyondMaxArraySizeRunAsSeveralArrays() throws {
        guard LiveCluster.present() else { return }
        let client = SlurmCommandClient()
        let maxArraySize = try client.maxArraySize()
        guard maxArraySize <= 16 else {
            let note = "MaxArraySize is \(maxArraySize): start the cluster with SCTRIAL_SLURM_MAX_ARRAY_SIZE=8 to test the split"
            if LiveCluster.inCI { Issue.record(Comment(rawValue: note)) } else { print("live: \(note)") }
            return
        }
        let run = try LiveCluster.scratch("split")
        defer { try? FileManager.default.removeItem(at: run) }
        // The controller really refuses an index at MaxArraySize.
        let refused = #expect(throws: SlurmError.self) {
            try client.submit(SlurmJobRequest(name: "too-big", script: "#!/bin/bash\ntrue\n",
                                              array: SlurmArraySpec(.range(0...maxArraySize)), workingDirectory: run.path))
        }
        #expect(refused?.description.contains("Invalid job array specification") == true, "\(String(describing: refused))")

        let shardCount = 2 * maxArraySize + 1
        let parts = try SlurmArraySplit.parts(shardCount: shardCount, maxArraySize: maxArraySize)
        #expect(parts.map(\.offset) == [0, maxArraySize, 2 * maxArraySize])
        let worker = try LiveCluster.worker(in: run)
        let started = Date()
        let jobs = try parts.map { part throws in
            try client.submit(SlurmTemplate.shardArrayRequest(name: "sctrial-live-split", run: run.path, worker: [worker], part: part,
                                                              resources: SlurmResources(memoryMB: 32)))
        }
        let final = try waitUntilDone(jobs: jobs, client: client, polling: LiveCluster.fast)
        print("live: \(shardCount) shards as \(jobs.count) arrays (MaxArraySize \(maxArraySize)) finished in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(final.count == shardCount)
        #expect(final.values.allSatisfy { $0 == .completed })
        for (part, job) in zip(parts, jobs) {
            for (task, shard) in zip(part.indices.values, part.shards) {
                #expect(LiveCluster.lines(run.appendingPathComponent("out/\(shard)")) == ["\(job.id) \(task)"], "shard \(shard)")
            }
        }
        let written = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("out").path)
        #expect(Set(written) == Set((0..<shardCount).map(String.init)))
    }
}
