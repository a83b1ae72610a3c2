import Foundation
import Testing
@testable import Orchestration

@Suite struct SlurmModelTests {
    @Test func jobIDsParseAndPrintAsSlurmDoes() {
        #expect(JobID("1234") == JobID(1234))
        #expect(JobID("1234_7") == JobID(1234, task: 7))
        #expect(JobID(1234, task: 7).description == "1234_7")
        #expect(JobID(1234, task: 7).job == JobID(1234))
        for bad in ["", "0", "-3", "12_", "12_x", "12_3_4", "12;cluster", "1234_[2-4]"] {
            #expect(JobID(bad) == nil, "\(bad)")
        }
        #expect([JobID(5, task: 2), JobID(5), JobID(4, task: 9)].sorted() == [JobID(4, task: 9), JobID(5), JobID(5, task: 2)])
    }

    @Test func slurmStateNamesMapToStates() {
        let cases: [(String, JobState)] = [
            ("PENDING", .pending), ("CONFIGURING", .pending), ("REQUEUED", .pending),
            ("RUNNING", .running), ("COMPLETING", .running), ("SUSPENDED", .running),
            ("COMPLETED", .completed), ("FAILED", .failed), ("OUT_OF_MEMORY", .outOfMemory), ("NODE_FAIL", .nodeFailure),
            ("PREEMPTED", .preempted), ("BOOT_FAIL", .failed), ("DEADLINE", .failed),
            ("CANCELLED by 0", .cancelled), ("CANCELLED+", .cancelled), ("TIMEOUT", .timeout),
            ("completed", .completed), ("", .unknown), ("SOMETHING_NEW", .unknown),
        ]
        for (text, state) in cases { #expect(JobState(slurm: text) == state, "\(text)") }
        #expect(!JobState.pending.isFinished && !JobState.running.isFinished)
        #expect([JobState.completed, .failed, .cancelled, .timeout, .unknown, .outOfMemory, .nodeFailure, .preempted].allSatisfy { $0.isFinished })
    }

    @Test func arrayIndicesFoldRunsAndParseSlurmsForms() {
        #expect(SlurmArrayIndices.range(0...999).specification == "0-999")
        #expect(SlurmArrayIndices.list([12, 3, 7, 8, 9, 3]).specification == "3,7-9,12")
        #expect(SlurmArrayIndices.list([5]).specification == "5")
        #expect(SlurmArraySpec(.range(0...9), throttle: 2).specification == "0-9%2")
        #expect(SlurmArraySpec(.list([3, 7, 12])).specification == "3,7,12")

        #expect(SlurmArrayIndices(slurm: "2-4%2")?.values == [2, 3, 4])
        #expect(SlurmArrayIndices(slurm: "[1,5-7]")?.values == [1, 5, 6, 7])
        #expect(SlurmArrayIndices(slurm: "9")?.values == [9])
        for bad in ["", "N/A", "4-2", "a-b", "1-2-3", "-1"] {
            #expect(SlurmArrayIndices(slurm: bad) == nil, "\(bad)")
        }
    }

    @Test func dependenciesSpellAfterOK() {
        #expect(SlurmDependency(afterOK: [JobID(12), JobID(13)]).specification == "afterok:12:13")
        #expect(SlurmDependency(afterOK: []).specification == nil)
    }

    @Test func requestsAreValidatedBeforeSubmission() {
        let good = SlurmJobRequest(name: "ok", script: "#!/bin/sh\ntrue\n", array: SlurmArraySpec(.range(0...3)))
        #expect(throws: Never.self) { try good.validate() }

        var noShebang = good
        noShebang.script = "true\n"
        #expect(throws: SlurmError.invalidRequest("job 'ok': the script must start with #! and an interpreter")) { try noShebang.validate() }
        var twoLines = good
        twoLines.name = "a\nb"
        #expect(throws: SlurmError.invalidRequest("job 'a\nb': the name must be one non-empty line")) { try twoLines.validate() }
        var noMemory = good
        noMemory.resources.memoryMB = 0
        #expect(throws: SlurmError.invalidRequest("job 'ok': the memory must be at least 1, not 0")) { try noMemory.validate() }
        var emptyList = good
        emptyList.array = SlurmArraySpec(.list([]))
        #expect(throws: SlurmError.invalidRequest("job 'ok': the array has no index")) { try emptyList.validate() }
    }

    @Test func inheritedSlurmVariablesAreScrubbedButTheClusterIsKept() {
        let inherited = [
            "PATH": "/usr/bin", "HOME": "/root", "SLURM_CONF": "/etc/slurm/slurm.conf",
            "SLURM_ARRAY_TASK_ID": "7", "SLURM_JOB_ID": "99", "SLURM_JWT": "secret", "SBATCH_PARTITION": "gpu",
            "SQUEUE_FORMAT": "%i", "SACCT_FORMAT": "JobID", "MY_SLURM_NOTE": "kept", "SLURMISH": "kept",
        ]
        #expect(SlurmEnvironment.scrubbed(inherited) == [
            "PATH": "/usr/bin", "HOME": "/root", "SLURM_CONF": "/etc/slurm/slurm.conf", "MY_SLURM_NOTE": "kept", "SLURMISH": "kept",
        ])
        let client = SlurmCommandClient(environment: inherited)
        #expect(client.environment["SLURM_ARRAY_TASK_ID"] == nil)
        #expect(client.environment["SLURM_CONF"] == "/etc/slurm/slurm.conf")
    }

    @Test func errorsAreOneLineAndSayTheWayOut() {
        let unauthorized = SlurmError.unauthorized(url: "http://127.0.0.1:6820", status: 401).description
        #expect(unauthorized == "slurmrestd at http://127.0.0.1:6820 refused the token (HTTP 401): it is missing, expired or for another user; get a new one with `scontrol token lifespan=SECONDS` and export it as SLURM_JWT")
        #expect(SlurmError.unreachable(url: "http://127.0.0.1:9", reason: "connection refused or host unreachable (is slurmrestd running?)").description
            == "cannot reach slurmrestd at http://127.0.0.1:9: connection refused or host unreachable (is slurmrestd running?)")
        #expect(SlurmError.rejected(operation: "slurmrestd job submission 'x'", messages: ["Invalid job array specification (error 2081)"]).description
            == "slurmrestd job submission 'x': Slurm said: Invalid job array specification (error 2081)")
        #expect(SlurmError.commandFailed(command: "sbatch", status: 1, message: "sbatch: error: Batch job submission failed: Invalid job array specification").description
            == "sbatch failed (exit 1): sbatch: error: Batch job submission failed: Invalid job array specification")
        #expect(SlurmError.commandNotFound("sbatch").description.hasPrefix("sbatch: not found on PATH; install"))
        #expect(SlurmError.unsupportedAPI(url: "http://h:1").description == "slurmrestd at http://h:1 serves none of the REST API versions v0.0.42, v0.0.41, v0.0.40, v0.0.39, v0.0.38")
        let timedOut = SlurmError.waitTimedOut(seconds: 60, unfinished: (0..<7).map { JobID(5, task: $0) }).description
        #expect(timedOut == "gave up after 60 s waiting for Slurm jobs: 7 unfinished (5_0, 5_1, 5_2, 5_3, 5_4, …)")
        #expect(SlurmError.oneLine("sbatch: error: first\n  sbatch: error: second\n\n") == "sbatch: error: first; sbatch: error: second")
    }
}

@Suite struct SlurmArraySplitTests {
    @Test func shardsOverMaxArraySizeBecomeSeveralArraysFromZero() throws {
        let parts = try SlurmArraySplit.parts(shardCount: 2500, maxArraySize: 1001)
        #expect(parts == [
            SlurmArrayPart(offset: 0, indices: .range(0...1000)),
            SlurmArrayPart(offset: 1001, indices: .range(0...1000)),
            SlurmArrayPart(offset: 2002, indices: .range(0...497)),
        ])
        #expect(parts.flatMap(\.shards) == Array(0..<2500))
        #expect(parts.map { SlurmArraySpec($0.indices, throttle: 50).specification } == ["0-1000%50", "0-1000%50", "0-497%50"])
    }

    @Test func edgeCounts() throws {
        #expect(try SlurmArraySplit.parts(shardCount: 0, maxArraySize: 8) == [])
        #expect(try SlurmArraySplit.parts(shardCount: 8, maxArraySize: 8) == [SlurmArrayPart(offset: 0, indices: .range(0...7))])
        #expect(try SlurmArraySplit.parts(shardCount: 9, maxArraySize: 8).map(\.offset) == [0, 8])
        #expect(try SlurmArraySplit.parts(shardCount: 3, maxArraySize: 1).map(\.shards) == [[0], [1], [2]])
        #expect(throws: SlurmError.invalidRequest("MaxArraySize 0 must be at least 1")) { try SlurmArraySplit.parts(shardCount: 3, maxArraySize: 0) }
    }

    @Test func chosenShardsBecomeIndexListsPerArray() throws {
        let parts = try SlurmArraySplit.parts(shards: [2001, 3, 7, 12, 1500, 7], maxArraySize: 1001)
        #expect(parts == [
            SlurmArrayPart(offset: 3, indices: .list([0, 4, 9])),
            SlurmArrayPart(offset: 1500, indices: .list([0, 501])),
        ])
        #expect(parts.map { $0.indices.specification } == ["0,4,9", "0,501"])
        #expect(parts.flatMap(\.shards) == [3, 7, 12, 1500, 2001])
        #expect(try SlurmArraySplit.parts(shards: [4, 5, 6], maxArraySize: 10) == [SlurmArrayPart(offset: 4, indices: .range(0...2))])
        #expect(throws: SlurmError.invalidRequest("shard -1 is negative")) { try SlurmArraySplit.parts(shards: [-1, 2], maxArraySize: 10) }
    }
}
