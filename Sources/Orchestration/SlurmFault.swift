import Foundation

/// Why a shard's Slurm task ended without a done marker, and what resubmitting it needs.
/// Slurm's state says some of it for a few minutes (MinJobAge) unless accounting keeps it; the
/// task's own log (RUN/logs/slurm-%A_%a.out), where slurmstepd writes why it killed the task, says
/// it for as long as the run directory lives, and with numbers: 22.05 without cgroups reports a
/// memory kill as plain FAILED, and only the log has "exceeded memory limit (USED > LIMIT)".
public struct SlurmFault: Sendable, Equatable {
    public enum Cause: String, Sendable, Equatable {
        /// Killed at its --time.
        case timeout
        /// Killed over its --mem (cgroup OOM or JobAcctGather's OverMemoryKill).
        case outOfMemory = "out_of_memory"
        /// Its node failed and Slurm did not requeue it.
        case nodeFailure = "node_failure"
        /// Preempted and cancelled rather than requeued.
        case preempted
        /// Cancelled by a person (scancel, `sctrial-plan cancel`): not retried automatically.
        case cancelled
        /// The worker exited non-zero (its message is in RUN/parts/NNNNN.failed).
        case failed
        /// The worker said the failure was temporary (exit 75): a lock, a full disk, a flaky mount.
        case temporary
        /// Slurm forgot the task and it left no marker and no failure record.
        case vanished
    }

    public var cause: Cause
    /// The array task that last ran the shard.
    public var task: JobID
    /// Memory the task used and was allowed when Slurm killed it (bytes), from the log.
    public var usedMemoryBytes: Int?
    public var memoryLimitBytes: Int?
    /// The worker's own words when it failed by itself.
    public var message: String?

    /// Whether `--auto-retry` resubmits it: everything the scheduler did to the task, and the
    /// worker's temporary failures; not a person's cancel nor an error the input will repeat.
    public var isRetryable: Bool {
        switch cause {
        case .timeout, .outOfMemory, .nodeFailure, .preempted, .temporary, .vanished: true
        case .cancelled, .failed: false
        }
    }

    /// One line for a person.
    public var description: String {
        switch cause {
        case .timeout: return "Slurm task \(task) hit its time limit (TIMEOUT)"
        case .outOfMemory:
            if let used = usedMemoryBytes, let limit = memoryLimitBytes {
                return "Slurm task \(task) ran out of memory (used \(Self.megabytes(used)) MB of \(Self.megabytes(limit)) MB)"
            }
            return "Slurm task \(task) ran out of memory (OUT_OF_MEMORY)"
        case .nodeFailure: return "Slurm task \(task) was lost with its node (NODE_FAIL)"
        case .preempted: return "Slurm task \(task) was preempted"
        case .cancelled: return "Slurm task \(task) was cancelled"
        case .failed: return "Slurm task \(task) failed" + (message.map { ": \($0)" } ?? "")
        case .temporary: return "Slurm task \(task) failed temporarily" + (message.map { ": \($0)" } ?? "")
        case .vanished: return "Slurm task \(task) left no marker and Slurm no longer knows it"
        }
    }

    static func megabytes(_ bytes: Int) -> Int { Int((Double(bytes) / 1_048_576).rounded()) }

    /// The fault from what Slurm says of the task (nil when it no longer knows it), the task's log
    /// text and the worker's failure record. Nil when the task is still pending or running, or
    /// completed (then a missing marker is a fault of its own: `vanished`).
    public static func classify(task: JobID, state: JobState?, log: String?, failure: ShardFailure?) -> SlurmFault? {
        if let state, state == .pending || state == .running { return nil }
        var fault = SlurmFault(cause: .vanished, task: task)
        let evidence = log.map(LogEvidence.init) ?? LogEvidence(text: "")
        if let memory = evidence.memory {
            fault.cause = .outOfMemory
            (fault.usedMemoryBytes, fault.memoryLimitBytes) = (memory.used, memory.limit)
        } else if evidence.oomKilled || state == .outOfMemory {
            fault.cause = .outOfMemory
        } else if evidence.timeLimit || state == .timeout {
            fault.cause = .timeout
        } else if evidence.preempted || state == .preempted {
            fault.cause = .preempted
        } else if evidence.nodeFailure || state == .nodeFailure {
            fault.cause = .nodeFailure
        } else if let failure {
            fault.cause = failure.exitCode == 75 ? .temporary : .failed
            fault.message = failure.message
        } else if evidence.cancelled || state == .cancelled {
            fault.cause = .cancelled
        } else if state == .failed {
            fault.cause = .failed
        }
        return fault
    }

    /// What slurmstepd writes into a task's output when it ends the task (Slurm 22.05 – 24.11).
    struct LogEvidence {
        var memory: (used: Int, limit: Int)?
        var oomKilled = false
        var timeLimit = false
        var preempted = false
        var nodeFailure = false
        var cancelled = false

        init(text: String) {
            for line in text.split(whereSeparator: \.isNewline) where line.contains("slurmstepd") {
                if let range = line.range(of: "exceeded memory limit (") {
                    // "StepId=12.batch exceeded memory limit (331587584 > 104857600), being killed"
                    let numbers = line[range.upperBound...].prefix { $0 != ")" }.split(separator: ">")
                        .map { Int($0.trimmingCharacters(in: .whitespaces)) }
                    if numbers.count == 2, let used = numbers[0], let limit = numbers[1], used > 0, limit > 0 {
                        memory = (used, limit)
                    }
                    oomKilled = true
                } else if line.contains("oom_kill event") || line.contains("oom-kill event") || line.contains("Exceeded job memory limit")
                            || line.contains("Exceeded step memory limit") {
                    oomKilled = true
                } else if line.contains("DUE TO TIME LIMIT") {
                    timeLimit = true
                } else if line.contains("DUE TO PREEMPTION") {
                    preempted = true
                } else if line.contains("DUE TO NODE FAILURE") {
                    nodeFailure = true
                } else if line.contains("CANCELLED AT") {
                    cancelled = true
                }
            }
        }
    }
}

/// A partition's ceilings, where Slurm says them; nil fields are unlimited or unknown.
public struct SlurmPartitionLimits: Sendable, Equatable {
    public var maxTimeMinutes: Int?
    /// The most memory one job can get on a node of the partition (MaxMemPerNode, else the
    /// largest node's RealMemory).
    public var maxMemoryMB: Int?

    public init(maxTimeMinutes: Int? = nil, maxMemoryMB: Int? = nil) {
        self.maxTimeMinutes = maxTimeMinutes
        self.maxMemoryMB = maxMemoryMB
    }
}

/// Resources for resubmitting a shard after `fault`, from what its failed task had: a time-out
/// doubles the time, a memory kill multiplies the memory by the measured overrun with a quarter
/// of headroom, at least 2× either way, both capped by the partition. Nil when the cap leaves
/// nothing to gain (the shard cannot fit the partition).
public enum SlurmEscalation {
    public struct Outcome: Sendable, Equatable {
        public var resources: SlurmResources
        /// For a person: "time 10 → 20 min", "memory 1024 → 3200 MB (used 1.56× its limit)".
        public var change: String?
    }

    public static func resources(after fault: SlurmFault, previous: SlurmResources,
                                 limits: SlurmPartitionLimits?) -> Outcome? {
        var next = previous
        switch fault.cause {
        case .timeout:
            guard let minutes = previous.timeLimitMinutes else { return Outcome(resources: next, change: nil) }
            var scaled = minutes * 2
            if let cap = limits?.maxTimeMinutes { scaled = min(scaled, cap) }
            guard scaled > minutes else { return nil }
            next.timeLimitMinutes = scaled
            return Outcome(resources: next, change: "time \(minutes) → \(scaled) min")
        case .outOfMemory:
            guard let megabytes = previous.memoryMB else { return Outcome(resources: next, change: nil) }
            var factor = 2.0
            var measured = ""
            if let used = fault.usedMemoryBytes, let limit = fault.memoryLimitBytes, limit > 0 {
                let overrun = Double(used) / Double(limit)
                factor = max(2, overrun * 1.25)
                measured = String(format: " (used %.2f× its limit)", overrun)
            }
            var scaled = Int((Double(megabytes) * factor).rounded(.up))
            if let cap = limits?.maxMemoryMB { scaled = min(scaled, cap) }
            guard scaled > megabytes else { return nil }
            next.memoryMB = scaled
            return Outcome(resources: next, change: "memory \(megabytes) → \(scaled) MB\(measured)")
        case .nodeFailure, .preempted, .cancelled, .failed, .temporary, .vanished:
            return Outcome(resources: next, change: nil)
        }
    }
}
