import Foundation

/// `RUN/slurm/jobs.json`: every submission of the run, so status, retry and cancel find its jobs.
public struct SlurmJobs: Codable, Sendable, Equatable {
    public struct ArrayJob: Codable, Sendable, Equatable {
        public var job: Int
        /// Shard = offset + array task id.
        public var offset: Int
        public var shards: [Int]
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
        var tasks: [Int: JobID] = [:]
        for submission in submissions {
            for array in submission.arrays {
                for shard in array.shards { tasks[shard] = JobID(array.job, task: shard - array.offset) }
            }
        }
        return tasks
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

    public init(client: any SlurmClient, via: String, planner: String, worker: String) {
        self.client = client
        self.via = via
        self.planner = planner
        self.worker = worker
    }

    /// Submits `shards` (default: every shard without a valid marker) and the reducer; first the
    /// plan's prerequisite run when it is not reduced yet, the shards then waiting for its reducer.
    @discardableResult
    public func submit(_ run: RunDirectory, options: SlurmSubmitOptions, shards requested: [Int]? = nil,
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
        let shards = requested ?? plan.shards.indices.filter { !ShardWorker.isDone(plan, run: run, shard: $0) }
        let resources = Self.resources(plan, run: run, options: options, shards: shards)
        let name = "sct-\(plan.runID)"
        var arrays: [SlurmJobs.ArrayJob] = []
        var arrayJobs: [JobID] = []
        let scripts = run.url.appendingPathComponent("slurm")
        try FileManager.default.createDirectory(at: scripts, withIntermediateDirectories: true)
        if !shards.isEmpty {
            let parts = try SlurmArraySplit.parts(shards: shards, maxArraySize: try client.maxArraySize())
            for part in parts {
                let request = try SlurmTemplate.shardArrayRequest(name: name, run: run.path, worker: workerCommand(options, plan: plan, run: run),
                                                                  part: part, throttle: options.maxConcurrent, resources: resources,
                                                                  dependency: waitFor)
                try AtomicFile.write(Data(request.script.utf8), to: scripts.appendingPathComponent("array-offset-\(part.offset).sbatch"))
                let job = try client.submit(request)
                arrays.append(.init(job: job.id, offset: part.offset, shards: part.shards))
                arrayJobs.append(job)
            }
        }
        var reduceJob: Int?
        if withReduce {
            let request = try SlurmTemplate.reduceRequest(name: name + "-r", run: run.path, planner: planner,
                                                          after: arrayJobs.isEmpty ? prerequisiteJobs : arrayJobs,
                                                          resources: SlurmResources(partition: options.partition, account: options.account,
                                                                                    qos: options.qos, timeLimitMinutes: 60, memoryMB: 4096, cpusPerTask: 1))
            try AtomicFile.write(Data(request.script.utf8), to: scripts.appendingPathComponent("reduce.sbatch"))
            reduceJob = try client.submit(request).id
        }
        let submission = SlurmJobs.Submission(at: Timestamp.now(), via: via, arrays: arrays, reduce: reduceJob)
        var jobs = SlurmJobs.read(run) ?? SlurmJobs()
        jobs.submissions.append(submission)
        try jobs.write(run)
        return submission
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
        let markers = plan.shards.indices.compactMap { ShardWorker.isDone(plan, run: run, shard: $0) ? ShardMarker.read(run.markerURL($0)) : nil }
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
        _ = try waitUntilDone(jobs: jobs, client: client, polling: polling) { states in
            let finished = states.filter { $0.key.task != nil && $0.value.isFinished }.count
            let tasks = states.keys.filter { $0.task != nil }.count
            let line = "\(finished)/\(tasks) shard tasks finished"
            if line != reported { reported = line; progress(line) }
        }
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
    /// running per their array task; a task Slurm lost or failed shows as failed or missing only
    /// from the run directory's records.
    public func status(_ run: RunDirectory) throws -> RunStatus {
        var status = try RunStatus.read(run)
        guard let jobs = SlurmJobs.read(run) else { return status }
        let tasks = jobs.taskOfShard
        let wanted = status.shards.filter { $0.state != .done }.compactMap { tasks[$0.index] }
        guard !wanted.isEmpty else { return status }
        let states = try client.states(of: Array(Set(wanted.map { JobID($0.id) })))
        for (position, shard) in status.shards.enumerated() where shard.state != .done {
            guard let task = tasks[shard.index], let state = states[task] else { continue }
            switch state {
            case .pending: status.shards[position].state = .pending
            case .running: status.shards[position].state = .running
            case .failed, .timeout, .cancelled:
                status.shards[position].state = .failed
                status.shards[position].message = status.shards[position].message ?? "Slurm task \(task) \(state.rawValue)"
            case .completed, .unknown:
                break  // no marker: missing, whatever Slurm remembers
            }
        }
        status.recount()
        return status
    }
}
