import Foundation

/// `RUN/slurm/jobs.json`: every submission of the run, so status, retry and cancel find its jobs.
public struct SlurmJobs: Codable, Sendable, Equatable {
    public struct ArrayJob: Codable, Sendable, Equatable {
        public var job: Int
        /// Shard = offset + array task id.
        public var offset: Int
        public var shards: [Int]
        /// What each task was given (absent in runs submitted before 0.4): a retry after a
        /// TIMEOUT or a memory kill scales these.
        public var timeLimitMinutes: Int?
        public var memoryMB: Int?

        enum CodingKeys: String, CodingKey {
            case job, offset, shards
            case timeLimitMinutes = "time_limit_minutes", memoryMB = "memory_mb"
        }
    }

    public struct Submission: Codable, Sendable, Equatable {
        public var at: String
        /// `sbatch` or `rest`.
        public var via: String
        public var arrays: [ArrayJob]
        public var reduce: Int?
    }

    public var submissions: [Submission] = []

    static func url(_ run: RunDirectory) -> URL { run.url.appendingPathComponent("slurm/jobs.json") }

    public static func read(_ run: RunDirectory) -> SlurmJobs? {
        guard let data = try? Data(contentsOf: url(run)) else { return nil }
        return try? JSONDecoder().decode(SlurmJobs.self, from: data)
    }

    func write(_ run: RunDirectory) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.url(run))
    }

    /// The array task that last ran (or runs) each shard.
    var taskOfShard: [Int: JobID] {
        Dictionary(uniqueKeysWithValues: lastArrayOfShard.map { shard, array in (shard, JobID(array.job, task: shard - array.offset)) })
    }

    /// The array that last ran (or runs) each shard.
    var lastArrayOfShard: [Int: ArrayJob] {
        var arrays: [Int: ArrayJob] = [:]
        for submission in submissions {
            for array in submission.arrays {
                for shard in array.shards { arrays[shard] = array }
            }
        }
        return arrays
    }

    var allJobs: [JobID] {
        submissions.flatMap { $0.arrays.map { JobID($0.job) } + ($0.reduce.map { [JobID($0)] } ?? []) }
    }
}

/// What `submit` and `retry` ask of Slurm beyond the plan.
public struct SlurmSubmitOptions: Sendable {
    public var partition: String?
    public var account: String?
    public var qos: String?
    public var timeMinutes: Int?
    public var memoryMB: Int?
    public var cpusPerTask: Int?
    /// `%K`: at most this many shards at once.
    public var maxConcurrent: Int?
    /// Run the worker inside this Apptainer/Singularity image.
    public var container: String?

    public init() {}
}

/// Submits a plan's shards as Slurm array jobs (split over MaxArraySize) and the reducer as a job
/// that runs after all of them (afterok, killed if a dependency fails), through either client.
public struct SlurmExecutor {
    public let client: any SlurmClient
    /// `sbatch` or `rest`, recorded with the jobs.
    public let via: String
    public let planner: String
    public let worker: String
    /// The ceilings an escalated retry stays under; nil when unknown (then it is not capped).
    public let partitionLimits: @Sendable (String?) -> SlurmPartitionLimits?

    public init(client: any SlurmClient, via: String, planner: String, worker: String,
                partitionLimits: @escaping @Sendable (String?) -> SlurmPartitionLimits? = { try? SlurmCommandClient().partitionLimits($0) }) {
        self.client = client
        self.via = via
        self.planner = planner
        self.worker = worker
        self.partitionLimits = partitionLimits
    }

    /// Shards submitted with the same resources: one array (or several over MaxArraySize).
    public struct ShardGroup: Sendable, Equatable {
        public var shards: [Int]
        public var resources: SlurmResources

        public init(shards: [Int], resources: SlurmResources) {
            self.shards = shards
            self.resources = resources
        }
    }

    /// Submits `shards` (default: every shard without a valid marker) and the reducer; first the
    /// plan's prerequisite run when it is not reduced yet, the shards then waiting for its reducer.
    @discardableResult
    public func submit(_ run: RunDirectory, options: SlurmSubmitOptions, shards requested: [Int]? = nil,
                       withReduce: Bool = true) throws -> SlurmJobs.Submission {
        let plan = try run.readPlan()
        let shards = requested ?? plan.shards.indices.filter { !ShardWorker.isDone(plan, run: run, shard: $0) }
        let resources = Self.resources(plan, run: run, options: options, shards: shards)
        return try submit(run, groups: [ShardGroup(shards: shards, resources: resources)], options: options, withReduce: withReduce)
    }

    /// Submits each group as its own array(s) with its own resources, then the reducer after all.
    @discardableResult
    public func submit(_ run: RunDirectory, groups: [ShardGroup], options: SlurmSubmitOptions,
                       withReduce: Bool = true) throws -> SlurmJobs.Submission {
        let plan = try run.readPlan()
        try run.create()
        var prerequisiteJobs: [JobID] = []
        if let prerequisite = plan.prerequisite {
            let inner = RunDirectory(run.resolve(prerequisite).path)
            if try !Reducer.isReduced(inner, plan: inner.readPlan()) {
                prerequisiteJobs = try submit(inner, options: options, withReduce: true).reduce.map { [JobID($0)] } ?? []
            }
        }
        let waitFor = prerequisiteJobs.isEmpty ? nil : SlurmDependency(afterOK: prerequisiteJobs)
        let name = "sct-\(plan.runID)"
        var arrayJobs: [JobID] = []
        let scripts = run.url.appendingPathComponent("slurm")
        try FileManager.default.createDirectory(at: scripts, withIntermediateDirectories: true)
        let nonEmpty = groups.filter { !$0.shards.isEmpty }
        let maxArraySize = nonEmpty.isEmpty ? SlurmArraySplit.defaultMaxArraySize : try client.maxArraySize()
        // Written after every job Slurm accepts: when it refuses a later array (MaxJobCount, say),
        // the ones it took stay visible to status, cancel and retry.
        var jobs = SlurmJobs.read(run) ?? SlurmJobs()
        let position = jobs.submissions.count
        jobs.submissions.append(SlurmJobs.Submission(at: Timestamp.now(), via: via, arrays: [], reduce: nil))
        do {
            for group in nonEmpty {
                for part in try SlurmArraySplit.parts(shards: group.shards, maxArraySize: maxArraySize) {
                    let request = try SlurmTemplate.shardArrayRequest(name: name, run: run.path, worker: workerCommand(options, plan: plan, run: run),
                                                                      part: part, throttle: options.maxConcurrent, resources: group.resources,
                                                                      dependency: waitFor)
                    try AtomicFile.write(Data(request.script.utf8), to: scripts.appendingPathComponent("array-offset-\(part.offset).sbatch"))
                    let job = try client.submit(request)
                    jobs.submissions[position].arrays.append(.init(job: job.id, offset: part.offset, shards: part.shards,
                                                                   timeLimitMinutes: group.resources.timeLimitMinutes,
                                                                   memoryMB: group.resources.memoryMB))
                    arrayJobs.append(job)
                    try jobs.write(run)
                }
            }
            if withReduce {
                let request = try SlurmTemplate.reduceRequest(name: name + "-r", run: run.path, planner: planner,
                                                              after: arrayJobs.isEmpty ? prerequisiteJobs : arrayJobs,
                                                              resources: SlurmResources(partition: options.partition, account: options.account,
                                                                                        qos: options.qos, timeLimitMinutes: 60, memoryMB: 4096, cpusPerTask: 1))
                try AtomicFile.write(Data(request.script.utf8), to: scripts.appendingPathComponent("reduce.sbatch"))
                jobs.submissions[position].reduce = try client.submit(request).id
            }
            try jobs.write(run)
        } catch {
            guard !arrayJobs.isEmpty else { throw error }
            let queued = arrayJobs.map(\.description).joined(separator: ", ")
            throw OrchestrationError("\(run.path): Slurm accepted array job\(arrayJobs.count == 1 ? "" : "s") \(queued), then refused the rest: \(error) "
                                     + "(recorded in RUN/slurm/jobs.json; `sctrial-plan retry \(run.path)` submits what is missing once Slurm has room, "
                                     + "`sctrial-plan cancel \(run.path)` removes what was queued)")
        }
        return jobs.submissions[position]
    }

    /// What resubmitting the faulted shards takes: groups by resources (escalated after a
    /// TIMEOUT or a memory kill, unless `options` fix --time/--mem), the changes made, and the
    /// shards that cannot be helped (already at the partition's ceiling).
    public struct RetryPlan: Sendable {
        public var groups: [ShardGroup]
        /// Per shard whose resources grew: "shard 3: time 10 → 20 min".
        public var changes: [String]
        /// Shards whose fault escalation cannot fix: at the partition's limit.
        public var unfit: [(shard: Int, fault: SlurmFault)]
    }

    public func retryPlan(_ run: RunDirectory, shards: [Int], faults: [Int: SlurmFault], options: SlurmSubmitOptions) throws -> RetryPlan {
        let plan = try run.readPlan()
        let base = Self.resources(plan, run: run, options: options, shards: shards)
        let arrays = SlurmJobs.read(run)?.lastArrayOfShard ?? [:]
        let limits = faults.values.contains { $0.cause == .timeout || $0.cause == .outOfMemory } ? partitionLimits(options.partition) : nil
        var byResources: [SlurmResources: [Int]] = [:]
        var changes: [String] = []
        var unfit: [(Int, SlurmFault)] = []
        for shard in shards.sorted() {
            var resources = base
            if let fault = faults[shard], let array = arrays[shard] {
                var previous = base
                previous.timeLimitMinutes = array.timeLimitMinutes ?? base.timeLimitMinutes
                previous.memoryMB = array.memoryMB ?? base.memoryMB
                guard let outcome = SlurmEscalation.resources(after: fault, previous: previous, limits: limits) else {
                    unfit.append((shard, fault))
                    continue
                }
                // Explicit --time/--mem win over escalation.
                resources.timeLimitMinutes = options.timeMinutes ?? outcome.resources.timeLimitMinutes
                resources.memoryMB = options.memoryMB ?? outcome.resources.memoryMB
                if let change = outcome.change,
                   fault.cause == .timeout && options.timeMinutes == nil || fault.cause == .outOfMemory && options.memoryMB == nil {
                    changes.append("shard \(shard): \(change) after \(fault.description)")
                }
            }
            byResources[resources, default: []].append(shard)
        }
        let groups = byResources.map { ShardGroup(shards: $0.value, resources: $0.key) }.sorted { $0.shards[0] < $1.shards[0] }
        return RetryPlan(groups: groups, changes: changes, unfit: unfit)
    }

    func workerCommand(_ options: SlurmSubmitOptions, plan: Plan, run: RunDirectory) -> [String] {
        Self.workerCommand(worker: worker, container: options.container, run: run.path, input: plan.input.path)
    }

    /// The worker command for the array script: `sctrial-worker`, or the image's own inside
    /// `apptainer exec`, with the run directory and the input's directory bound at the same paths
    /// (plan.json names them absolutely).
    public static func workerCommand(worker: String, container: String?, run: String, input: String) -> [String] {
        guard let image = container else { return [worker] }
        let inputDirectory = URL(fileURLWithPath: input).deletingLastPathComponent().path
        return ["apptainer", "exec", "--bind", "\(run),\(inputDirectory)", image, "sctrial-worker"]
    }

    /// Slurm resources from the options, else from the plan's estimates, corrected by what
    /// finished shards measured (their markers' seconds and peak RSS).
    static func resources(_ plan: Plan, run: RunDirectory, options: SlurmSubmitOptions, shards: [Int]) -> SlurmResources {
        let markers = plan.shards.indices.compactMap { ShardWorker.doneMarker(plan, run: run, shard: $0) }
        let chosen = shards.isEmpty ? plan.shards : shards.map { plan.shards[$0] }
        var seconds = chosen.map(\.estimatedSeconds).max() ?? 60
        var memory = Double(chosen.map(\.estimatedMemoryBytes).max() ?? 1 << 30)
        if !markers.isEmpty {
            // Scale the estimate by how the measured shards compared with theirs.
            let ratio = markers.map { $0.seconds / max(1e-3, plan.shards[$0.shard].estimatedSeconds) }.max() ?? 1
            seconds *= max(ratio, 0.1)
            memory = max(Double(markers.map(\.peakRSSBytes).max() ?? 0), memory * 0.5)
        }
        // Headroom: a shared node is slower than our estimate, and Slurm kills at the limit.
        let minutes = max(10, Int((seconds * 3 / 60).rounded(.up)) + 5)
        let megabytes = max(1024, Int((memory * 1.5 / 1e6).rounded(.up)))
        return SlurmResources(partition: options.partition, account: options.account, qos: options.qos,
                              timeLimitMinutes: options.timeMinutes ?? minutes, memoryMB: options.memoryMB ?? megabytes,
                              cpusPerTask: options.cpusPerTask ?? plan.resources.threads)
    }

    /// Waits (polling with backoff) until the run's last submission has ended; true when the run
    /// is reduced and every shard has a valid marker — the markers decide, not Slurm.
    public func wait(_ run: RunDirectory, polling: SlurmPolling = SlurmPolling(),
                     progress: @escaping (String) -> Void = { _ in }) throws -> Bool {
        guard let last = SlurmJobs.read(run)?.submissions.last else {
            throw OrchestrationError("\(run.path): nothing submitted to Slurm yet (sctrial-plan submit \(run.path))")
        }
        let jobs = last.arrays.map { JobID($0.job) } + (last.reduce.map { [JobID($0)] } ?? [])
        var reported = ""
        _ = try waitUntilDone(jobs: jobs, client: client, polling: polling, progress: { states in
            let finished = states.filter { $0.key.task != nil && $0.value.isFinished }.count
            let tasks = states.keys.filter { $0.task != nil }.count
            let line = "\(finished)/\(tasks) shard tasks finished"
            if line != reported { reported = line; progress(line) }
        }, problem: { error in
            // Once per outage: the next answer resets `reported`.
            guard !reported.hasPrefix("Slurm did not answer") else { return }
            reported = "Slurm did not answer (\(error)); still waiting"
            progress(reported)
        })
        let status = try RunStatus.read(run)
        return status.done == status.total && status.reduced
    }

    /// Cancels every job the run submitted.
    public func cancel(_ run: RunDirectory) throws -> [JobID] {
        let jobs = SlurmJobs.read(run)?.allJobs ?? []
        for job in jobs { try client.cancel(job) }
        return jobs
    }

    /// The run directory's status with Slurm's view of the shards that are not done: pending or
    /// running per their array task; a finished task without a marker shows as failed with why
    /// (TIMEOUT, memory, node, preemption: `SlurmFault`), from Slurm or the task's log.
    public func status(_ run: RunDirectory) throws -> RunStatus { try inspect(run).status }

    /// `status`, and the fault of every shard that is neither done nor queued, from one look at
    /// Slurm: Slurm's view of its last task, that task's log and the worker's failure record.
    public func inspect(_ run: RunDirectory) throws -> (status: RunStatus, faults: [Int: SlurmFault]) {
        var status = try RunStatus.read(run)
        guard let jobs = SlurmJobs.read(run) else { return (status, [:]) }
        let tasks = jobs.taskOfShard
        let wanted = status.shards.filter { $0.state != .done }.compactMap { tasks[$0.index] }
        guard !wanted.isEmpty else { return (status, [:]) }
        let states = try client.states(of: Array(Set(wanted.map(\.job))))
        var faults: [Int: SlurmFault] = [:]
        for (position, shard) in status.shards.enumerated() where shard.state != .done && shard.state != .running {
            guard let task = tasks[shard.index] else { continue }
            let state = states[task].flatMap { $0 == .unknown ? nil : $0 }
            switch state {
            case .pending: status.shards[position].state = .pending
            case .running: status.shards[position].state = .running
            default:
                // The array's log pattern is RUN/logs/slurm-%A_%a.out (SlurmTemplate).
                let log = try? String(contentsOf: run.logsURL.appendingPathComponent("slurm-\(task.id)_\(task.task ?? 0).out"), encoding: .utf8)
                guard let fault = SlurmFault.classify(task: task, state: state, log: log, failure: ShardFailure.read(run.failureURL(shard.index)))
                else { continue }
                faults[shard.index] = fault
                guard fault.cause != .vanished else { continue }  // missing, whatever Slurm remembers
                status.shards[position].state = .failed
                status.shards[position].message = fault.cause == .failed || fault.cause == .temporary
                    ? status.shards[position].message ?? fault.description : fault.description
            }
        }
        status.recount()
        return (status, faults)
    }
}
