import Foundation
import Testing
@testable import Orchestration

/// The clients' pure parts: command lines, output parsing, REST request and response shapes.
@Suite struct SlurmCommandParsingTests {
    @Test func sbatchArgumentsCarryEverySetting() {
        let request = SlurmJobRequest(
            name: "sctrial", script: "#!/bin/sh\n", array: SlurmArraySpec(.list([3, 7, 12]), throttle: 4),
            resources: SlurmResources(partition: "p", account: "a", qos: "q", timeLimitMinutes: 5, memoryMB: 100, cpusPerTask: 1),
            dependency: SlurmDependency(afterOK: [JobID(9)]), workingDirectory: "/w", outputPath: "/w/logs/%A_%a.out")
        #expect(SlurmCommandClient.sbatchArguments(for: request) == [
            "--parsable", "--job-name=sctrial", "--array=3,7,12%4", "--partition=p", "--account=a", "--qos=q", "--time=5",
            "--mem=100M", "--cpus-per-task=1", "--dependency=afterok:9", "--kill-on-invalid-dep=yes", "--chdir=/w",
            "--output=/w/logs/%A_%a.out",
        ])
        #expect(SlurmCommandClient.sbatchArguments(for: SlurmJobRequest(name: "n", script: "#!/bin/sh\n")) == ["--parsable", "--job-name=n"])
    }

    @Test func squeueLinesExpandToTasks() throws {
        // What squeue --array --states=all --format=%F|%K|%T printed on the local cluster.
        let text = "1|N/A|COMPLETED\n2|2-4%2|PENDING\n2|0|RUNNING\n2|1|COMPLETED\n"
        let records = try SlurmCommandClient.parseRecords(text, source: "squeue")
        #expect(records == [
            SlurmStateRecord(id: 1, tasks: nil, state: .completed), SlurmStateRecord(id: 2, tasks: [2, 3, 4], state: .pending),
            SlurmStateRecord(id: 2, tasks: [0], state: .running), SlurmStateRecord(id: 2, tasks: [1], state: .completed),
        ])
        let states = SlurmStateRecord.collate(records, requested: [JobID(1), JobID(2), JobID(3), JobID(2, task: 4), JobID(2, task: 9)])
        #expect(states == [
            JobID(1): .completed, JobID(3): .unknown,
            JobID(2, task: 0): .running, JobID(2, task: 1): .completed, JobID(2, task: 2): .pending,
            JobID(2, task: 3): .pending, JobID(2, task: 4): .pending, JobID(2, task: 9): .unknown,
        ])
        #expect(throws: SlurmError.unreadableOutput(source: "squeue", detail: "unexpected line 'garbage'")) {
            try SlurmCommandClient.parseRecords("garbage\n", source: "squeue")
        }
    }

    @Test func sacctLinesSkipStepsAndReadCancelledBy() throws {
        let text = "12|COMPLETED\n12.batch|COMPLETED\n13_0|FAILED\n13_[1-2]|CANCELLED by 0\n13_3.batch|FAILED\n"
        #expect(try SlurmCommandClient.parseSacct(text) == [
            SlurmStateRecord(id: 12, tasks: nil, state: .completed), SlurmStateRecord(id: 13, tasks: [0], state: .failed),
            SlurmStateRecord(id: 13, tasks: [1, 2], state: .cancelled),
        ])
    }

    @Test func accountingIsOffAsEitherVersionSaysIt() {
        // `scontrol show config` with AccountingStorageType=accounting_storage/none in slurm.conf.
        #expect(!SlurmCommandClient.accountingEnabled(storageType: "accounting_storage/none"))   // 22.05
        #expect(!SlurmCommandClient.accountingEnabled(storageType: "(null)"))                    // 24.11
        #expect(SlurmCommandClient.accountingEnabled(storageType: "accounting_storage/slurmdbd"))
    }

    @Test func missingCommandIsNamed() {
        let client = SlurmCommandClient(environment: ["PATH": "/nonexistent"])
        #expect(throws: SlurmError.commandNotFound("sbatch")) { try client.submit(SlurmJobRequest(name: "x", script: "#!/bin/sh\n")) }
        #expect(throws: SlurmError.commandNotFound("scontrol")) { try client.maxArraySize() }
    }
}

@Suite struct SlurmRESTShapeTests {
    static let request = SlurmJobRequest(
        name: "sctrial", script: "#!/bin/sh\necho hi\n", array: SlurmArraySpec(.range(0...9), throttle: 2),
        resources: SlurmResources(partition: "debug", timeLimitMinutes: 30, memoryMB: 512, cpusPerTask: 1),
        dependency: SlurmDependency(afterOK: [JobID(4), JobID(5)]), workingDirectory: "/runs/r", outputPath: "/runs/r/logs/slurm-%A_%a.out")
    static let environment = ["PATH": "/usr/bin:/bin", "HOME": "/root"]

    /// The body as the server receives it (through JSON), so the test sees real JSON types.
    func body(_ version: SlurmRESTClient.APIVersion) throws -> [String: Any] {
        let bytes = try SlurmRESTClient.json(SlurmRESTClient.submitBody(for: Self.request, version: version, environment: Self.environment))
        return try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test func v0038UsesPlainNumbersAndAnEnvironmentObject() throws {
        let body = try body(.v0_0_38)
        #expect(body["script"] as? String == Self.request.script)
        let job = try #require(body["job"] as? [String: Any])
        #expect(job["name"] as? String == "sctrial")
        #expect(job["array"] as? String == "0-9%2")
        #expect(job["partition"] as? String == "debug")
        #expect(job["time_limit"] as? Int == 30)
        #expect(job["memory_per_node"] as? Int == 512)
        #expect(job["cpus_per_task"] as? Int == 1)
        #expect(job["dependency"] as? String == "afterok:4:5")
        #expect(job["kill_on_invalid_dependency"] as? Bool == true)
        #expect(job["current_working_directory"] as? String == "/runs/r")
        #expect(job["standard_output"] as? String == "/runs/r/logs/slurm-%A_%a.out")
        #expect(job["environment"] as? [String: String] == Self.environment)
        #expect(job["flags"] == nil)
    }

    @Test func v0039AndLaterUseNoValStructsFlagsAndAnEnvironmentList() throws {
        for version in [SlurmRESTClient.APIVersion.v0_0_39, .v0_0_40, .v0_0_41, .v0_0_42] {
            let body = try body(version)
            let job = try #require(body["job"] as? [String: Any])
            let time = try #require(job["time_limit"] as? [String: Any])
            #expect(time["set"] as? Bool == true && time["infinite"] as? Bool == false && time["number"] as? Int == 30)
            let memory = try #require(job["memory_per_node"] as? [String: Any])
            #expect(memory["number"] as? Int == 512)
            #expect(job["flags"] as? [String] == ["KILL_INVALID_DEPENDENCY"])
            #expect(job["kill_on_invalid_dependency"] == nil)
            #expect(job["environment"] as? [String] == ["HOME=/root", "PATH=/usr/bin:/bin"])
            if version >= .v0_0_41 {
                #expect(body["script"] == nil)
                #expect(job["script"] as? String == Self.request.script)
            } else {
                #expect(body["script"] as? String == Self.request.script)
            }
        }
    }

    @Test func jobRecordsOfEveryVersionBecomeTaskStates() throws {
        // v0.0.38 (as the local 22.05 cluster answered): plain numbers, null task id while unsplit.
        let v38: [[String: Any]] = [
            ["job_id": 2, "array_job_id": 2, "array_task_id": NSNull(), "array_task_string": "2-4%2", "job_state": "PENDING"],
            ["job_id": 4, "array_job_id": 2, "array_task_id": 1, "array_task_string": "", "job_state": "RUNNING"],
            ["job_id": 7, "array_job_id": 0, "job_state": "COMPLETED"],
        ]
        #expect(try SlurmRESTClient.records(fromJobs: v38) == [
            SlurmStateRecord(id: 2, tasks: [2, 3, 4], state: .pending), SlurmStateRecord(id: 2, tasks: [1], state: .running),
            SlurmStateRecord(id: 7, tasks: nil, state: .completed),
        ])
        // v0.0.40+: {set, infinite, number} ids and job_state as a list of flags.
        let v40: [[String: Any]] = [
            ["job_id": 9, "array_job_id": ["set": true, "infinite": false, "number": 9],
             "array_task_id": ["set": false, "infinite": false, "number": 0], "array_task_string": "0-1", "job_state": ["PENDING"]],
            ["job_id": 11, "array_job_id": ["set": true, "infinite": false, "number": 9],
             "array_task_id": ["set": true, "infinite": false, "number": 2], "job_state": ["FAILED", "REQUEUED"]],
            ["job_id": 12, "array_job_id": ["set": true, "infinite": false, "number": 0], "job_state": ["CANCELLED"]],
        ]
        #expect(try SlurmRESTClient.records(fromJobs: v40) == [
            SlurmStateRecord(id: 9, tasks: [0, 1], state: .pending), SlurmStateRecord(id: 9, tasks: [2], state: .failed),
            SlurmStateRecord(id: 12, tasks: nil, state: .cancelled),
        ])
        #expect(throws: SlurmError.unreadableOutput(source: "slurmrestd", detail: "the response has no jobs list")) {
            try SlurmRESTClient.records(fromJobs: nil)
        }
        #expect(SlurmRESTClient.integer(4_294_967_294) == nil)
        #expect(SlurmRESTClient.integer(["set": true, "infinite": true, "number": 0]) == nil)
    }

    @Test func slurmErrorsAreReportedInTheirOwnWordsWithoutTheToken() throws {
        let token = "eyJhbGciOiJIUzI1NiJ9.secret-part.signature"
        let client = SlurmRESTClient(baseURL: "http://127.0.0.1:6820/", token: token, version: .v0_0_38, userName: "alice",
                                     environment: ["PATH": "/bin", "SLURM_JWT": token, "COPY": "Bearer \(token)", "SLURM_CONF": "/c"])
        #expect(client.baseURL == "http://127.0.0.1:6820")
        #expect(client.jobEnvironment == ["PATH": "/bin", "SLURM_CONF": "/c"])
        #expect(!client.description.contains(token) && !String(reflecting: client).contains(token))
        var dumped = ""
        dump(client, to: &dumped)
        #expect(!dumped.contains(token))

        // As 22.05 answered an over-limit array, and a server echoing the token back.
        let rejected = Data(#"{"errors": [{"error_code": 2081, "error": "Invalid job array specification"}, {"error": "bad token \#(token)"}]}"#.utf8)
        let error = #expect(throws: SlurmError.self) { try client.checked(.init(status: 500, body: Array(rejected)), operation: "slurmrestd job submission 'x'") }
        #expect(error == .rejected(operation: "slurmrestd job submission 'x'", messages: ["Invalid job array specification (error 2081)", "bad token <token>"]))
        #expect(error.map { !$0.description.contains(token) } == true)

        let notFound = Data(#"{"errors": [{"description": "Unable to find JobId=999", "error_number": 2017, "error": "Invalid job id specified", "source": "slurm_load_job"}]}"#.utf8)
        let entries = try #require(SlurmRESTClient.errorEntries(Array(notFound)))
        #expect(SlurmRESTClient.message(of: entries[0]) == "Invalid job id specified: Unable to find JobId=999 (error 2017)")
        #expect(SlurmRESTClient.isInvalidJobID(entries[0]))

        #expect(throws: SlurmError.unauthorized(url: "http://127.0.0.1:6820", status: 401)) {
            try client.checked(.init(status: 401, body: Array("Authentication failure".utf8)), operation: "ping")
        }
        // How 22.05 answered a ping with a forged token: slurmctld refused it, no reason given.
        let forged = Data(#"{"errors": [{"description": "slurmctld config is unable to load", "error_number": -1, "error": "Unspecified error", "source": "slurm_load_ctl_conf"}]}"#.utf8)
        let refused = #expect(throws: SlurmError.self) { try client.checked(.init(status: 500, body: Array(forged)), operation: "ping") }
        #expect(refused == .unauthorized(url: "http://127.0.0.1:6820", status: 500))
        #expect(refused?.description == "slurmctld behind http://127.0.0.1:6820 refused the request without a reason (HTTP 500), which is how slurmrestd 22.05 reports an invalid or expired token; get a new one with `scontrol token lifespan=SECONDS` and export it as SLURM_JWT")
        #expect(throws: SlurmError.httpStatus(url: "http://127.0.0.1:6820/slurm/v0.0.38", status: 502)) {
            try client.checked(.init(status: 502, body: []), operation: "ping")
        }
    }

    /// Answers of Slurm 24.11.5's slurmrestd (Debian 13, `SCTRIAL_SLURM_VERSION=24.11`), recorded
    /// with curl and trimmed to the fields the client reads.
    @Test func slurm2411AnswersAsRecorded() throws {
        func object(_ text: String) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
        // v0.0.42 GET job/5 of a 0-3%1 array after cancelling tasks 0 and 2 (the same in v0.0.40/41):
        // the pending rest keeps an unset task id and names its tasks with the throttle.
        let array = try object("""
            {"jobs": [
             {"job_id": 5, "array_job_id": {"set": true, "infinite": false, "number": 5},
              "array_task_id": {"set": false, "infinite": false, "number": 0}, "array_task_string": "3%1", "job_state": ["PENDING"],
              "array_max_tasks": {"set": true, "infinite": false, "number": 1}},
             {"job_id": 7, "array_job_id": {"set": true, "infinite": false, "number": 5},
              "array_task_id": {"set": true, "infinite": false, "number": 1}, "array_task_string": "", "job_state": ["RUNNING"]},
             {"job_id": 6, "array_job_id": {"set": true, "infinite": false, "number": 5},
              "array_task_id": {"set": true, "infinite": false, "number": 0}, "array_task_string": "", "job_state": ["CANCELLED"]}],
             "errors": [], "warnings": []}
            """)
        let records = try SlurmRESTClient.records(fromJobs: array["jobs"])
        #expect(records == [SlurmStateRecord(id: 5, tasks: [3], state: .pending), SlurmStateRecord(id: 5, tasks: [1], state: .running),
                            SlurmStateRecord(id: 5, tasks: [0], state: .cancelled)])
        #expect(SlurmStateRecord.collate(records, requested: [JobID(5)]) == [
            JobID(5, task: 0): .cancelled, JobID(5, task: 1): .running, JobID(5, task: 3): .pending])

        let client = SlurmRESTClient(baseURL: "http://127.0.0.1:6820", token: "eyJhbGciOiJIUzI1NiJ9.not.recorded", version: .v0_0_42, userName: "root", environment: [:])
        // An id the controller does not know: HTTP 404 (22.05: 500), "query" where 22.05 said "find".
        let unknown = Array(#"{"jobs": [], "errors": [{"description": "Unable to query JobId=999999", "error_number": 2017, "error": "Invalid job id specified", "source": "_handle_job_get"}], "warnings": []}"#.utf8)
        let unknownEntries = try #require(SlurmRESTClient.errorEntries(unknown))
        #expect(unknownEntries.count == 1 && SlurmRESTClient.isInvalidJobID(unknownEntries[0]))
        #expect(SlurmRESTClient.message(of: unknownEntries[0]) == "Invalid job id specified: Unable to query JobId=999999 (error 2017)")

        // A token slurmctld refuses: HTTP 511 with "Protocol authentication error" (22.05: HTTP 500, "Unspecified error").
        let refused = Array(#"{"jobs": [], "errors": [{"description": "Unable to query JobId=1", "error_number": 1007, "error": "Protocol authentication error", "source": "_handle_job_get"}], "warnings": []}"#.utf8)
        let error = #expect(throws: SlurmError.self) { try client.checked(.init(status: 511, body: refused), operation: "slurmrestd job 1") }
        #expect(error == .unauthorized(url: "http://127.0.0.1:6820", status: 511))
        #expect(error?.description == "slurmctld behind http://127.0.0.1:6820 refused the token (HTTP 511, Protocol authentication error): it is invalid or expired; get a new one with `scontrol token lifespan=SECONDS` and export it as SLURM_JWT")
        #expect(throws: SlurmError.unauthorized(url: "http://127.0.0.1:6820", status: 500)) {
            try client.checked(.init(status: 500, body: refused), operation: "slurmrestd job 1")
        }

        // The ping with that token: HTTP 200, no errors, but slurmctld "DOWN".
        let down = try object(#"{"pings": [{"hostname": "vm", "pinged": "DOWN", "responding": false, "latency": 11839, "mode": "primary", "primary": true}], "errors": [], "warnings": []}"#)
        let up = try object(#"{"pings": [{"hostname": "vm", "pinged": "UP", "responding": true, "latency": 915, "mode": "primary", "primary": true}], "errors": [], "warnings": []}"#)
        let up40 = try object(#"{"pings": [{"hostname": "vm", "pinged": "UP", "latency": 1120, "mode": "primary"}], "errors": [], "warnings": []}"#)
        let up38 = try object(#"{"pings": [{"hostname": "vm", "ping": "UP", "status": 0, "mode": "primary"}], "errors": []}"#)
        #expect(!SlurmRESTClient.pingReachedController(down))
        #expect(SlurmRESTClient.pingReachedController(up) && SlurmRESTClient.pingReachedController(up40) && SlurmRESTClient.pingReachedController(up38))
        let notResponding = SlurmError.controllerNotResponding(url: "http://127.0.0.1:6820").description
        #expect(notResponding.contains("ping: DOWN") && notResponding.contains("scontrol token") && !notResponding.contains("\n"))

        // v0.0.42 DELETE of a finished array and of an unknown id: HTTP 200, empty errors, outcomes in `status`
        // (v0.0.40 and v0.0.41 answer {"errors": [], "warnings": []} to both).
        let finished = try object("""
            {"status": [
             {"error": {"string": "Job/step already completing or completed", "code": 2021, "message": "Job/step already completing or completed"},
              "step_id": "5_1", "job_id": {"set": true, "infinite": false, "number": 7}, "federation": {"sibling": ""}},
             {"error": {"string": "Job/step already completing or completed", "code": 2021, "message": "Job/step already completing or completed"},
              "step_id": "5", "job_id": {"set": true, "infinite": false, "number": 5}, "federation": {"sibling": ""}}],
             "errors": [], "warnings": []}
            """)
        let finishedErrors = SlurmRESTClient.statusErrors(finished)
        #expect(finishedErrors.count == 2 && finishedErrors.allSatisfy(SlurmRESTClient.isAlreadyDone))
        #expect(SlurmRESTClient.message(of: finishedErrors[0]) == "Job/step already completing or completed: job 5_1 (error 2021)")
        let forgotten = try object(#"{"status": [{"error": {"string": "Invalid job id specified", "code": 2017, "message": "Invalid job id specified"}, "step_id": "999999", "job_id": {"set": false, "infinite": false, "number": 0}, "federation": {"sibling": ""}}], "errors": [], "warnings": []}"#)
        #expect(SlurmRESTClient.statusErrors(forgotten).map(SlurmRESTClient.isInvalidJobID) == [true])
        // A successful cancel: nothing in status.
        #expect(SlurmRESTClient.statusErrors(try object(#"{"status": [], "errors": [], "warnings": []}"#)).isEmpty)

        // An over-limit array (MaxArraySize 8, indices 0-8): the same shape as 22.05's, HTTP 500.
        let overLimit = Array(#"{"errors": [{"description": "Batch job submission failed", "error_number": 2081, "error": "Invalid job array specification", "source": "slurm_submit_batch_job()"}], "warnings": []}"#.utf8)
        #expect(throws: SlurmError.rejected(operation: "submit", messages: ["Invalid job array specification: Batch job submission failed (error 2081)"])) {
            try client.checked(.init(status: 500, body: overLimit), operation: "submit")
        }
        // A cancel refused to another user: in `errors`, HTTP 500, in every version.
        let notPermitted = Array(#"{"status": [], "errors": [{"description": "Signal request failed", "error_number": 1, "error": "Operation not permitted", "source": "slurm_kill_jobs()"}], "warnings": []}"#.utf8)
        #expect(throws: SlurmError.rejected(operation: "cancel", messages: ["Operation not permitted: Signal request failed (error 1)"])) {
            try client.checked(.init(status: 500, body: notPermitted), operation: "cancel")
        }
    }

    @Test func refusedConnectionNamesTheURL() {
        let token = "not-a-real-token-but-secret"
        let error = #expect(throws: SlurmError.self) { try SlurmRESTClient.connect(baseURL: "http://127.0.0.1:9", token: token, userName: "root") }
        #expect(error == .unreachable(url: "http://127.0.0.1:9", reason: "connection refused or host unreachable (is slurmrestd running?)"))
        #expect(error.map { !$0.description.contains(token) && !$0.description.contains("\n") } == true)
    }
}

/// A scripted client: each poll returns the next answer.
final class ScriptedClient: SlurmClient, @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [Result<[JobID: JobState], SlurmError>]
    private(set) var polls = 0

    init(_ answers: [Result<[JobID: JobState], SlurmError>]) { self.answers = answers }

    func submit(_ request: SlurmJobRequest) throws(SlurmError) -> JobID { JobID(1) }
    func cancel(_ job: JobID) throws(SlurmError) {}
    func maxArraySize() throws(SlurmError) -> Int { 1001 }
    func states(of jobs: [JobID]) throws(SlurmError) -> [JobID: JobState] {
        let answer: Result<[JobID: JobState], SlurmError> = lock.withLock {
            polls += 1
            return answers.count > 1 ? answers.removeFirst() : answers[0]
        }
        return try answer.get()
    }
}

final class SleepRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [Duration] = []
    var sleeps: [Duration] { lock.withLock { recorded } }
    func record(_ duration: Duration) { lock.withLock { recorded.append(duration) } }
}

@Suite struct WaitUntilDoneTests {
    let array = JobID(7)
    func task(_ index: Int) -> JobID { JobID(7, task: index) }

    @Test func backsOffExponentiallyUpToTheCapAndReportsTheLastStates() throws {
        let running: [JobID: JobState] = [task(0): .running, task(1): .pending]
        let done: [JobID: JobState] = [task(0): .completed, task(1): .failed]
        let client = ScriptedClient(Array(repeating: .success(running), count: 7) + [.success(done)])
        let recorder = SleepRecorder()
        let final = try waitUntilDone(jobs: [array], client: client,
                                      polling: SlurmPolling(initialInterval: .seconds(1), maximumInterval: .seconds(30), sleep: recorder.record))
        #expect(final == done)
        #expect(client.polls == 8)
        #expect(recorder.sleeps == [1, 2, 4, 8, 16, 30, 30].map { Duration.seconds($0) })
    }

    @Test func aTaskGoneFromSlurmIsUnknownNotCompleted() throws {
        let client = ScriptedClient([
            .success([task(0): .running, task(1): .running]),
            .success([task(1): .completed]),                // task 0 vanished
            .success([array: .unknown]),                    // the whole array forgotten
        ])
        let final = try waitUntilDone(jobs: [array], client: client, polling: SlurmPolling(sleep: { _ in }))
        #expect(final == [task(0): .unknown, task(1): .completed])
        #expect(client.polls == 2)
    }

    @Test func aJobNeverSeenIsUnknownAtOnce() throws {
        let client = ScriptedClient([.success([JobID(99): .unknown])])
        #expect(try waitUntilDone(jobs: [JobID(99)], client: client, polling: SlurmPolling(sleep: { _ in })) == [JobID(99): .unknown])
    }

    @Test func toleratesAFewFailedPollsThenGivesUp() throws {
        let flaky = ScriptedClient([
            .failure(.commandFailed(command: "squeue", status: 1, message: "Socket timed out")),
            .success([task(0): .completed]),
        ])
        #expect(try waitUntilDone(jobs: [array], client: flaky, polling: SlurmPolling(sleep: { _ in })) == [task(0): .completed])

        let broken = ScriptedClient([.failure(.commandFailed(command: "squeue", status: 1, message: "Socket timed out"))])
        #expect(throws: SlurmError.commandFailed(command: "squeue", status: 1, message: "Socket timed out")) {
            try waitUntilDone(jobs: [array], client: broken, polling: SlurmPolling(toleratedFailures: 2, sleep: { _ in }))
        }
        #expect(broken.polls == 3)
    }

    @Test func timesOutNamingTheUnfinishedTasks() {
        let client = ScriptedClient([.success([task(0): .completed, task(1): .running])])
        #expect(throws: SlurmError.waitTimedOut(seconds: 10, unfinished: [task(1)])) {
            try waitUntilDone(jobs: [array], client: client,
                              polling: SlurmPolling(initialInterval: .seconds(2), timeout: .seconds(10), sleep: { _ in }))
        }
    }
}

/// The command client against stand-in commands on PATH that record each call.
@Suite struct SlurmCommandCallsTests {
    @Test func configIsReadOnceHoweverManyPollsMissAJob() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-fake-slurm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("calls").path
        func command(_ name: String, printing output: String) throws {
            let url = directory.appendingPathComponent(name)
            try "#!/bin/sh\necho \(name) >>'\(log)'\nprintf '\(output)'\n".write(to: url, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        // Array 7 is still listed; array 5 finished long enough ago (MinJobAge) to have left squeue,
        // so every poll misses it and asks whether accounting could say more.
        try command("squeue", printing: #"7|0|RUNNING\n7|1-3|PENDING\n"#)
        try command("scontrol", printing: #"AccountingStorageType   = accounting_storage/none\nMaxArraySize            = 1001\n"#)
        try command("sacct", printing: "")
        let client = SlurmCommandClient(environment: ["PATH": directory.path + ":/usr/bin:/bin"])
        #expect(try client.maxArraySize() == 1001)
        for _ in 0..<4 {
            let states = try client.states(of: [JobID(5), JobID(7)])
            #expect(states[JobID(5)] == .unknown)
            #expect(states[JobID(7, task: 0)] == .running && states[JobID(7, task: 3)] == .pending)
        }
        let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(calls.filter { $0 == "squeue" }.count == 4)
        #expect(calls.filter { $0 == "scontrol" }.count == 1)  // one REQUEST_BUILD_INFO per client, not one per poll
        #expect(!calls.contains("sacct"))  // accounting_storage/none
    }
}
