import Foundation
import Testing
@testable import Orchestration

/// A node lost mid-array, as Slurm 22.05 reported it on the multi-node test cluster
/// (`SCTRIAL_SLURM_NODES=3 slurm/local-cluster.sh start`, then `kill-node node2` under a 3-task
/// array): the task keeps RUNNING on the silent node until SlurmdTimeout, is then requeued (PENDING
/// again, restart_cnt 1; never NODE_FAIL with the default JobRequeue) and runs on another node.
/// Waiting follows it to the end instead of stopping or counting it failed.
@Suite struct RequeueTests {
    let array = JobID(1)

    /// squeue --array --states=all --format=%F|%K|%T, poll by poll.
    static let squeuePolls = [
        "1|0|RUNNING\n1|1|RUNNING\n1|2|RUNNING\n",
        "1|0|RUNNING\n1|1|RUNNING\n1|2|RUNNING\n",   // node2 killed: not noticed yet
        "1|1|PENDING\n1|2|RUNNING\n1|0|RUNNING\n",   // node2 down, task 1 requeued
        "1|1|RUNNING\n1|2|COMPLETED\n1|0|COMPLETED\n",
        "1|1|COMPLETED\n1|2|COMPLETED\n1|0|COMPLETED\n",
    ]

    /// slurmrestd v0.0.38 GET job/1, poll by poll (the fields the client reads).
    static func restPoll(_ states: [(task: Int, state: String)]) -> Any {
        states.map { ["job_id": 2 + $0.task, "array_job_id": 1, "array_task_id": $0.task, "job_state": $0.state] as [String: Any] }
    }

    static var restPolls: [Any] {
        [
            restPoll([(0, "RUNNING"), (1, "RUNNING"), (2, "RUNNING")]),
            restPoll([(0, "RUNNING"), (1, "RUNNING"), (2, "RUNNING")]),
            restPoll([(1, "PENDING"), (2, "RUNNING"), (0, "RUNNING")]),
            restPoll([(1, "RUNNING"), (2, "COMPLETED"), (0, "COMPLETED")]),
            restPoll([(1, "COMPLETED"), (2, "COMPLETED"), (0, "COMPLETED")]),
        ]
    }

    func follow(_ answers: [[JobID: JobState]]) throws -> (final: [JobID: JobState], polls: Int, task1: [JobState]) {
        let client = ScriptedClient(answers.map { .success($0) })
        var task1: [JobState] = []
        let final = try waitUntilDone(jobs: [array], client: client, polling: SlurmPolling(sleep: { _ in })) { states in
            task1.append(states[JobID(1, task: 1)] ?? .unknown)
        }
        return (final, client.polls, task1)
    }

    @Test func aRequeuedTaskIsFollowedThroughSqueue() throws {
        let answers = try Self.squeuePolls.map { text in
            SlurmStateRecord.collate(try SlurmCommandClient.parseRecords(text, source: "squeue"), requested: [array])
        }
        let followed = try follow(answers)
        #expect(followed.polls == 5)
        #expect(followed.task1 == [.running, .running, .pending, .running, .completed])
        #expect(followed.final == [JobID(1, task: 0): .completed, JobID(1, task: 1): .completed, JobID(1, task: 2): .completed])
    }

    @Test func aRequeuedTaskIsFollowedThroughSlurmrestd() throws {
        let answers = try Self.restPolls.map { jobs in
            SlurmStateRecord.collate(try SlurmRESTClient.records(fromJobs: jobs), requested: [array])
        }
        let followed = try follow(answers)
        #expect(followed.polls == 5)
        #expect(followed.task1 == [.running, .running, .pending, .running, .completed])
        #expect(followed.final.values.allSatisfy { $0 == .completed } && followed.final.count == 3)
    }
}
