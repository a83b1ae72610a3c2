import Foundation
import Testing
@testable import Orchestration

/// Why a task ended, from Slurm's state and the log slurmstepd wrote, and what a retry gets.
@Suite struct SlurmFaultTests {
    let task = JobID(41, task: 3)
    /// Written by slurmstepd 22.05 (jobacct_gather/linux with OverMemoryKill, no cgroups): the
    /// state is FAILED, only the log says memory, with the numbers.
    let memoryKill22 = """
        slurmstepd-vm: error: StepId=1.batch exceeded memory limit (331587584 > 104857600), being killed
        slurmstepd-vm: error: Exceeded job memory limit
        slurmstepd-vm: error: *** JOB 1 ON vm CANCELLED AT 2026-12-04T01:15:18 ***
        """
    let timeLimit22 = "slurmstepd-vm: error: *** JOB 2 ON vm CANCELLED AT 2026-12-04T01:16:42 DUE TO TIME LIMIT ***\n"

    @Test func theLogNamesAMemoryKillThatTheStateCallsFailed() throws {
        let fault = try #require(SlurmFault.classify(task: task, state: .failed, log: memoryKill22, failure: nil))
        #expect(fault.cause == .outOfMemory)
        #expect(fault.usedMemoryBytes == 331_587_584 && fault.memoryLimitBytes == 104_857_600)
        #expect(fault.description == "Slurm task 41_3 ran out of memory (used 316 MB of 100 MB)")
        #expect(fault.isRetryable)
    }

    @Test func timeLimitFromTheLogOrTheState() throws {
        #expect(SlurmFault.classify(task: task, state: nil, log: timeLimit22, failure: nil)?.cause == .timeout)
        #expect(SlurmFault.classify(task: task, state: .timeout, log: nil, failure: nil)?.cause == .timeout)
        // The log outlives Slurm's memory of the job (MinJobAge without accounting).
        #expect(SlurmFault.classify(task: task, state: nil, log: timeLimit22, failure: nil)?.description
                == "Slurm task 41_3 hit its time limit (TIMEOUT)")
    }

    @Test func everyOtherEnding() throws {
        let error = ShardFailure(shard: 3, exitCode: 2, message: "/data.h5ad: /X/indptr: not ascending", at: "t")
        let temporary = ShardFailure(shard: 3, exitCode: 75, message: "cannot lock the shard", at: "t")
        let cases: [(JobState?, String?, ShardFailure?, SlurmFault.Cause, Bool)] = [
            (.outOfMemory, nil, nil, .outOfMemory, true),
            (.nodeFailure, nil, nil, .nodeFailure, true),
            (.preempted, nil, nil, .preempted, true),
            (nil, "slurmstepd: error: *** JOB 9 ON n2 CANCELLED AT 2026-12-04T01:00:00 DUE TO PREEMPTION ***", nil, .preempted, true),
            (.failed, "slurmstepd: error: Detected 1 oom_kill event in StepId=9.batch. Some of the step tasks have been OOM Killed.", nil, .outOfMemory, true),
            (.cancelled, "slurmstepd: error: *** JOB 9 ON vm CANCELLED AT 2026-12-04T01:00:00 ***", nil, .cancelled, false),
            (nil, "slurmstepd: error: *** JOB 9 ON vm CANCELLED AT 2026-12-04T01:00:00 ***", nil, .cancelled, false),
            (.failed, "", error, .failed, false),
            (.failed, "", temporary, .temporary, true),
            (nil, nil, nil, .vanished, true),
            (.completed, "", nil, .vanished, true),
        ]
        for (state, log, failure, cause, retryable) in cases {
            let fault = try #require(SlurmFault.classify(task: task, state: state, log: log, failure: failure))
            #expect(fault.cause == cause, "\(String(describing: state)) \(log ?? "-")")
            #expect(fault.isRetryable == retryable, "\(cause)")
        }
        #expect(SlurmFault.classify(task: task, state: .failed, log: "", failure: error)?.description
                == "Slurm task 41_3 failed: /data.h5ad: /X/indptr: not ascending")
        #expect(SlurmFault.classify(task: task, state: .running, log: timeLimit22, failure: nil) == nil)
        #expect(SlurmFault.classify(task: task, state: .pending, log: nil, failure: error) == nil)
    }

    @Test func aTimeoutDoublesTheTimeUpToThePartitionsMaximum() throws {
        let before = SlurmResources(partition: "short", timeLimitMinutes: 25, memoryMB: 2048, cpusPerTask: 2)
        let fault = SlurmFault(cause: .timeout, task: task)
        let doubled = try #require(SlurmEscalation.resources(after: fault, previous: before, limits: nil))
        #expect(doubled.resources == SlurmResources(partition: "short", timeLimitMinutes: 50, memoryMB: 2048, cpusPerTask: 2))
        #expect(doubled.change == "time 25 → 50 min")
        let capped = try #require(SlurmEscalation.resources(after: fault, previous: before, limits: SlurmPartitionLimits(maxTimeMinutes: 30)))
        #expect(capped.resources.timeLimitMinutes == 30)
        #expect(SlurmEscalation.resources(after: fault, previous: capped.resources, limits: SlurmPartitionLimits(maxTimeMinutes: 30)) == nil)
    }

    @Test func aMemoryKillScalesByTheMeasuredOverrunAtLeastTwice() throws {
        let before = SlurmResources(timeLimitMinutes: 10, memoryMB: 100)
        var fault = SlurmFault(cause: .outOfMemory, task: task, usedMemoryBytes: 331_587_584, memoryLimitBytes: 104_857_600)
        // 3.16× over: 1.25 × 3.16 = 3.95 → 396 MB.
        let scaled = try #require(SlurmEscalation.resources(after: fault, previous: before, limits: nil))
        #expect(scaled.resources.memoryMB == 396 && scaled.resources.timeLimitMinutes == 10)
        #expect(scaled.change == "memory 100 → 396 MB (used 3.16× its limit)")
        // Barely over, or no numbers (cgroup OOM): twice.
        fault.usedMemoryBytes = 110_000_000
        #expect(SlurmEscalation.resources(after: fault, previous: before, limits: nil)?.resources.memoryMB == 200)
        let unmeasured = SlurmFault(cause: .outOfMemory, task: task)
        #expect(SlurmEscalation.resources(after: unmeasured, previous: before, limits: nil)?.resources.memoryMB == 200)
        #expect(SlurmEscalation.resources(after: unmeasured, previous: before, limits: SlurmPartitionLimits(maxMemoryMB: 150))?.resources.memoryMB == 150)
        #expect(SlurmEscalation.resources(after: unmeasured, previous: SlurmResources(memoryMB: 150), limits: SlurmPartitionLimits(maxMemoryMB: 150)) == nil)
    }

    @Test func otherFaultsKeepTheirResources() throws {
        let before = SlurmResources(timeLimitMinutes: 10, memoryMB: 100)
        for cause in [SlurmFault.Cause.nodeFailure, .preempted, .temporary, .vanished, .failed] {
            let outcome = try #require(SlurmEscalation.resources(after: SlurmFault(cause: cause, task: task), previous: before, limits: nil))
            #expect(outcome.resources == before && outcome.change == nil)
        }
    }

    /// What `scontrol show partition/node --oneliner` print (22.05, shortened to the fields read).
    @Test func partitionLimitsFromScontrol() {
        let partitions = """
            PartitionName=debug AllowGroups=ALL Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED Nodes=vm MaxMemPerNode=UNLIMITED
            PartitionName=short AllowGroups=ALL Default=NO MaxTime=04:00:00 Nodes=n[1-2] MaxMemPerNode=8000
            PartitionName=long Default=NO MaxTime=2-00:00:00 Nodes=n3 MaxMemPerNode=UNLIMITED
            """
        let nodes = """
            NodeName=vm Arch=x86_64 RealMemory=24105 AllocMem=0 Partitions=debug  BootTime=2026-12-03T21:04:52
            NodeName=n1 RealMemory=16000 Partitions=short,long
            NodeName=n2 RealMemory=32000 Partitions=short
            NodeName=n3 RealMemory=64000 Partitions=long
            """
        typealias Client = SlurmCommandClient
        #expect(Client.parsePartitionLimits(partitions: partitions, nodes: nodes, partition: nil) == SlurmPartitionLimits(maxTimeMinutes: nil, maxMemoryMB: 24105))
        #expect(Client.parsePartitionLimits(partitions: partitions, nodes: nodes, partition: "short") == SlurmPartitionLimits(maxTimeMinutes: 240, maxMemoryMB: 8000))
        #expect(Client.parsePartitionLimits(partitions: partitions, nodes: nodes, partition: "long") == SlurmPartitionLimits(maxTimeMinutes: 2880, maxMemoryMB: 64000))
        #expect(Client.parsePartitionLimits(partitions: partitions, nodes: nodes, partition: "gpu") == nil)
        #expect(SlurmDuration.minutes("30:00") == 30 && SlurmDuration.minutes("1-02:03:04") == 1564 && SlurmDuration.minutes("2-00:00:00") == 2880)
        #expect(SlurmDuration.minutes("90") == 90 && SlurmDuration.minutes("1-2") == 1560 && SlurmDuration.minutes("0:30") == 1)
        #expect(SlurmDuration.minutes("x") == nil && SlurmDuration.minutes("1:2:3:4") == nil && SlurmDuration.minutes("-5") == nil)
    }
}

@Suite struct RequeueFollowingTests {
    let array = JobID(7)
    func task(_ index: Int) -> JobID { JobID(7, task: index) }

    /// Slurm shows NODE_FAIL for a moment, then the requeued task is pending again: the wait goes on.
    @Test func aNodeFailureThatIsRequeuedIsFollowed() throws {
        let client = ScriptedClient([
            .success([task(0): .completed, task(1): .running]),
            .success([task(0): .completed, task(1): .nodeFailure]),
            .success([task(0): .completed, task(1): .pending]),
            .success([task(0): .completed, task(1): .completed]),
        ])
        let final = try waitUntilDone(jobs: [array], client: client, polling: SlurmPolling(sleep: { _ in }))
        #expect(final == [task(0): .completed, task(1): .completed])
        #expect(client.polls == 4)
    }

    /// Not requeued: the same ending twice in a row is final.
    @Test func aNodeFailureSeenTwiceIsFinal() throws {
        let client = ScriptedClient([.success([task(0): .completed, task(1): .preempted])])
        let final = try waitUntilDone(jobs: [array], client: client, polling: SlurmPolling(sleep: { _ in }))
        #expect(final == [task(0): .completed, task(1): .preempted])
        #expect(client.polls == 2)
    }

    /// A controller restart: many failed polls in a row are ridden out, and each is reported.
    @Test func aControllerAwayForAWhileIsWaitedFor() throws {
        let down = Result<[JobID: JobState], SlurmError>.failure(.commandFailed(command: "squeue", status: 1, message: "Unable to contact slurm controller (connect failure)"))
        let client = ScriptedClient(Array(repeating: down, count: 12) + [.success([task(0): .completed])])
        let problems = ProblemRecorder()
        let final = try waitUntilDone(jobs: [array], client: client, polling: SlurmPolling(sleep: { _ in }), problem: problems.record)
        #expect(final == [task(0): .completed])
        #expect(problems.count == 12)
    }
}

final class ProblemRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var seen = 0
    var count: Int { lock.withLock { seen } }
    func record(_ error: SlurmError) { lock.withLock { seen += 1 } }
}
