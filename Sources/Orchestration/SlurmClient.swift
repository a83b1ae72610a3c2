import Foundation

/// The whole contract an executor needs from Slurm: submit, look, cancel, and the array limit.
/// Implementations: `SlurmCommandClient` (sbatch, squeue, sacct, scancel, scontrol) and
/// `SlurmRESTClient` (slurmrestd). Slurm's view is advisory: the run directory's markers decide
/// whether a shard is done.
public protocol SlurmClient: Sendable {
    /// Submits one batch job or array and returns its id (the array's id for an array).
    func submit(_ request: SlurmJobRequest) throws(SlurmError) -> JobID

    /// The state of every task of each job (an array id expands to its tasks, pending ones
    /// included; a task id stays itself). A job Slurm no longer knows maps to `.unknown`, never
    /// to success. Without accounting, a pending task cancelled before it started leaves no
    /// record at all: asked for by task id it is `.unknown`.
    func states(of jobs: [JobID]) throws(SlurmError) -> [JobID: JobState]

    /// Cancels a job, a whole array, or one array task. Cancelling a finished job is not an error.
    func cancel(_ job: JobID) throws(SlurmError)

    /// The controller's MaxArraySize: array indices must stay below it.
    func maxArraySize() throws(SlurmError) -> Int
}

/// How `waitUntilDone` paces itself: the interval doubles after each poll up to the cap, so a long
/// array costs the controller a few queries a minute rather than one a second.
public struct SlurmPolling: Sendable {
    public var initialInterval: Duration
    public var maximumInterval: Duration
    /// Give up (throwing `waitTimedOut`) once the intervals waited add up to this; nil waits forever.
    public var timeout: Duration?
    /// Consecutive failed queries tolerated: a busy controller times out now and then, and a
    /// restarted one is away for a while (the default, with the backoff, rides out ~8 minutes).
    public var toleratedFailures: Int
    /// Waits between polls; tests pass one that only records.
    public var sleep: @Sendable (Duration) -> Void

    public init(initialInterval: Duration = .seconds(1), maximumInterval: Duration = .seconds(30), timeout: Duration? = nil,
                toleratedFailures: Int = 20,
                sleep: @escaping @Sendable (Duration) -> Void = {
                    Thread.sleep(forTimeInterval: Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18)
                }) {
        self.initialInterval = initialInterval
        self.maximumInterval = maximumInterval
        self.timeout = timeout
        self.toleratedFailures = toleratedFailures
        self.sleep = sleep
    }
}

/// Polls until every task of `jobs` has finished, with exponential backoff, and returns each task's
/// last state. A task that disappears from Slurm's view is reported `.unknown` (gone), never
/// `.completed`: the caller checks the run directory's marker files to know what was done.
///
/// A task Slurm requeues (after a node failure or a preemption) can show NODE_FAIL or PREEMPTED
/// for a moment before it is pending again: such an ending counts only when the next poll still
/// shows it, so requeued tasks are followed rather than taken as failed.
public func waitUntilDone(jobs: [JobID], client: some SlurmClient, polling: SlurmPolling = SlurmPolling(),
                          progress: ([JobID: JobState]) -> Void = { _ in },
                          problem: (SlurmError) -> Void = { _ in }) throws(SlurmError) -> [JobID: JobState] {
    var known: [JobID: JobState] = [:]
    var interval = polling.initialInterval
    var waited = Duration.zero
    var failures = 0
    var unconfirmed: [JobID: JobState] = [:]
    while true {
        do {
            let now = try client.states(of: jobs)
            failures = 0
            for (job, _) in known where now[job] == nil { known[job] = .unknown }
            known.merge(now) { _, new in new }
            // An array whose tasks have been seen no longer needs its placeholder entry.
            for job in jobs where job.task == nil && known[job] == .unknown && known.keys.contains(where: { $0.id == job.id && $0.task != nil }) {
                known[job] = nil
            }
            progress(known)
            if known.values.allSatisfy(\.isFinished) {
                let requeueable = known.filter { $0.value == .nodeFailure || $0.value == .preempted }
                if requeueable.isEmpty || requeueable == unconfirmed { return known }
                unconfirmed = requeueable
            }
        } catch {
            failures += 1
            if failures > polling.toleratedFailures { throw error }
            problem(error)
        }
        if let timeout = polling.timeout, waited >= timeout {
            throw .waitTimedOut(seconds: Int(timeout.seconds.rounded()), unfinished: known.filter { !$0.value.isFinished }.keys.sorted())
        }
        polling.sleep(interval)
        waited += interval
        interval = min(interval * 2, polling.maximumInterval)
    }
}

/// The environment Slurm commands and jobs are started with.
public enum SlurmEnvironment {
    /// Prefixes of variables Slurm's commands read as input (SLURM_* from an enclosing job, and
    /// SBATCH_/SQUEUE_/SACCT_/SCANCEL_ defaults that would change options or output formats).
    static let scrubbedPrefixes = ["SLURM_", "SBATCH_", "SQUEUE_", "SACCT_", "SCANCEL_", "SCONTROL_", "SALLOC_", "SRUN_"]

    /// `environment` without any of those variables except SLURM_CONF (which names the cluster).
    /// Without this, a submission from inside a Slurm job inherits that job's SLURM_ARRAY_TASK_ID,
    /// SLURM_JOB_ID… and the new job's tasks compute the wrong shard.
    public static func scrubbed(_ environment: [String: String]) -> [String: String] {
        environment.filter { name, _ in
            name == "SLURM_CONF" || !scrubbedPrefixes.contains(where: { name.hasPrefix($0) })
        }
    }
}

/// One job's view as a Slurm tool printed it, before expansion into tasks.
struct SlurmStateRecord: Sendable, Hashable {
    /// The job id, or the array's id for array tasks.
    let id: Int
    /// The array tasks this record covers; nil for a job that is not an array.
    let tasks: [Int]?
    let state: JobState

    /// Every requested job expanded to its tasks, `.unknown` where no record names it.
    static func collate(_ records: [SlurmStateRecord], requested: [JobID]) -> [JobID: JobState] {
        var byID: [Int: [SlurmStateRecord]] = [:]
        for record in records { byID[record.id, default: []].append(record) }
        var result: [JobID: JobState] = [:]
        for job in requested {
            var found = false
            for record in byID[job.id] ?? [] {
                guard let tasks = record.tasks else {
                    if job.task == nil { result[job] = record.state; found = true }
                    continue
                }
                for task in tasks where job.task == nil || job.task == task {
                    result[JobID(job.id, task: task)] = record.state
                    found = true
                }
            }
            if !found { result[job] = .unknown }
        }
        return result
    }
}

extension Duration {
    /// The duration in seconds as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
