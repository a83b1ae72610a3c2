/// A Slurm job, or one task of an array job ("1234" or "1234_7").
public struct JobID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The job id Slurm returned at submission (for an array: the array's id).
    public let id: Int
    /// The array task index, nil for a whole job or array.
    public let task: Int?

    public init(_ id: Int, task: Int? = nil) {
        self.id = id
        self.task = task
    }

    /// Parses "1234" and "1234_7" (what sbatch, squeue and sacct print); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let id = Int(parts[0]), id > 0 else { return nil }
        if parts.count == 2 {
            guard let task = Int(parts[1]), task >= 0 else { return nil }
            self.init(id, task: task)
        } else {
            self.init(id)
        }
    }

    /// The whole job (or array) this task belongs to.
    public var job: JobID { JobID(id) }

    public var description: String { task.map { "\(id)_\($0)" } ?? "\(id)" }

    public static func < (lhs: JobID, rhs: JobID) -> Bool {
        (lhs.id, lhs.task ?? -1) < (rhs.id, rhs.task ?? -1)
    }
}

/// Where a job or array task stands. `unknown` means Slurm no longer (or never) knew it: the run
/// directory's marker files, not Slurm, then say whether the work was done.
public enum JobState: String, Sendable, Hashable, CaseIterable {
    case pending, running, completed, failed, cancelled, timeout, unknown
    /// Killed over its memory (cgroups); 22.05 without cgroups says `failed` and only the task's
    /// log tells (see `SlurmFault`).
    case outOfMemory = "out_of_memory"
    /// Lost with its node and not requeued.
    case nodeFailure = "node_failure"
    /// Preempted and not requeued (a requeued job is pending again).
    case preempted

    /// Nothing more will happen to the job by itself.
    public var isFinished: Bool { self != .pending && self != .running }

    /// Maps Slurm's state names (squeue %T, sacct State, REST job_state), tolerating sacct's
    /// "CANCELLED by 0" and REST's flag lists (the first entry is the base state).
    public init(slurm text: some StringProtocol) {
        let base = String(text).split(whereSeparator: { $0 == " " || $0 == "," || $0 == "+" }).first.map(String.init)?.uppercased() ?? ""
        switch base {
        case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
             "POWER_UP_NODE", "LAUNCH_FAILED":
            self = .pending
        case "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING", "UPDATE_DB":
            self = .running
        case "COMPLETED": self = .completed
        case "FAILED", "BOOT_FAIL", "DEADLINE", "REVOKED":
            self = .failed
        case "OUT_OF_MEMORY": self = .outOfMemory
        case "NODE_FAIL": self = .nodeFailure
        case "PREEMPTED": self = .preempted
        case "CANCELLED": self = .cancelled
        case "TIMEOUT": self = .timeout
        default: self = .unknown
        }
    }
}

/// The indices of an array job: Slurm's `--array` value without the throttle.
public enum SlurmArrayIndices: Sendable, Hashable {
    case range(ClosedRange<Int>)
    /// Explicit indices (any order, duplicates ignored), as when resubmitting failed shards.
    case list([Int])

    /// Every index, ascending.
    public var values: [Int] {
        switch self {
        case .range(let range): Array(range)
        case .list(let list): Array(Set(list)).sorted()
        }
    }

    /// Slurm's syntax: "0-9", or a list with consecutive runs folded ("3,7-9,12").
    public var specification: String {
        var runs: [String] = []
        var values = self.values[...]
        while let first = values.popFirst() {
            var last = first
            while values.first == last + 1 { last = values.removeFirst() }
            runs.append(first == last ? "\(first)" : "\(first)-\(last)")
        }
        return runs.joined(separator: ",")
    }

    /// Parses what squeue, sacct and slurmrestd print for unsplit tasks ("2-4%2", "1,5-7",
    /// "[3-5]"); nil when the text is not an index list.
    public init?(slurm text: some StringProtocol) {
        var body = Substring(text)
        if body.hasPrefix("["), body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        if let percent = body.firstIndex(of: "%") { body = body[..<percent] }
        var values: [Int] = []
        for item in body.split(separator: ",") {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            // "0-9:2" steps are a sbatch input form; Slurm prints expanded lists.
            guard let low = Int(bounds[0]), low >= 0 else { return nil }
            switch bounds.count {
            case 1: values.append(low)
            case 2:
                guard let high = Int(bounds[1]), high >= low else { return nil }
                values.append(contentsOf: low...high)
            default: return nil
            }
        }
        guard !values.isEmpty else { return nil }
        self = .list(values)
    }
}

/// `--array`: indices plus an optional cap on tasks running at once (`%K`).
public struct SlurmArraySpec: Sendable, Hashable {
    public var indices: SlurmArrayIndices
    public var throttle: Int?

    public init(_ indices: SlurmArrayIndices, throttle: Int? = nil) {
        self.indices = indices
        self.throttle = throttle
    }

    /// The `--array` value, e.g. "0-999%50".
    public var specification: String {
        indices.specification + (throttle.map { "%\($0)" } ?? "")
    }
}

/// What a job asks of the scheduler; nil leaves the site's default.
public struct SlurmResources: Sendable, Hashable {
    public var partition: String?
    public var account: String?
    public var qos: String?
    public var timeLimitMinutes: Int?
    public var memoryMB: Int?
    public var cpusPerTask: Int?

    public init(partition: String? = nil, account: String? = nil, qos: String? = nil,
                timeLimitMinutes: Int? = nil, memoryMB: Int? = nil, cpusPerTask: Int? = nil) {
        self.partition = partition
        self.account = account
        self.qos = qos
        self.timeLimitMinutes = timeLimitMinutes
        self.memoryMB = memoryMB
        self.cpusPerTask = cpusPerTask
    }
}

/// `--dependency=afterok:…`: start only once every listed job (every task of an array) completed
/// successfully. With `killOnInvalid`, a dependency that can no longer be met cancels the job at
/// once instead of leaving it pending forever (a reducer behind a failed array).
public struct SlurmDependency: Sendable, Hashable {
    public var afterOK: [JobID]
    public var killOnInvalid: Bool

    public init(afterOK: [JobID], killOnInvalid: Bool = true) {
        self.afterOK = afterOK
        self.killOnInvalid = killOnInvalid
    }

    /// "afterok:12:13", or nil when there is nothing to wait for.
    public var specification: String? {
        afterOK.isEmpty ? nil : "afterok:" + afterOK.map(\.description).joined(separator: ":")
    }
}

/// One batch submission, the same for sbatch and slurmrestd.
public struct SlurmJobRequest: Sendable, Hashable {
    public var name: String
    /// The whole batch script, starting with "#!".
    public var script: String
    public var array: SlurmArraySpec?
    public var resources: SlurmResources
    public var dependency: SlurmDependency?
    /// Absolute; the job's current directory.
    public var workingDirectory: String?
    /// Absolute; Slurm's patterns (%A, %a, %j) allowed. Its directory must exist before submission.
    public var outputPath: String?

    public init(name: String, script: String, array: SlurmArraySpec? = nil, resources: SlurmResources = SlurmResources(),
                dependency: SlurmDependency? = nil, workingDirectory: String? = nil, outputPath: String? = nil) {
        self.name = name
        self.script = script
        self.array = array
        self.resources = resources
        self.dependency = dependency
        self.workingDirectory = workingDirectory
        self.outputPath = outputPath
    }

    /// Refuses what Slurm would reject late or misread: names or paths with line breaks, a script
    /// without "#!", non-positive sizes, negative indices.
    public func validate() throws(SlurmError) {
        func refuse(_ why: String) -> SlurmError { .invalidRequest("job '\(name)': \(why)") }
        guard !name.isEmpty, !name.contains(where: \.isNewline) else { throw refuse("the name must be one non-empty line") }
        guard script.hasPrefix("#!") else { throw refuse("the script must start with #! and an interpreter") }
        for (label, value) in [("working directory", workingDirectory), ("output path", outputPath),
                               ("partition", resources.partition), ("account", resources.account), ("qos", resources.qos)] {
            if let value, value.isEmpty || value.contains(where: \.isNewline) {
                throw refuse("the \(label) must be one non-empty line")
            }
        }
        for (label, value) in [("time limit", resources.timeLimitMinutes), ("memory", resources.memoryMB),
                               ("cpus per task", resources.cpusPerTask), ("array throttle", array?.throttle)] {
            if let value, value < 1 { throw refuse("the \(label) must be at least 1, not \(value)") }
        }
        if let array {
            let values = array.indices.values
            guard let first = values.first else { throw refuse("the array has no index") }
            guard first >= 0 else { throw refuse("array indices start at 0, not \(first)") }
        }
    }
}

/// Slurm's durations, as sbatch takes them and scontrol prints them: M, M:S, H:M:S, D-H, D-H:M,
/// D-H:M:S; in whole minutes, seconds rounding up. Nil for anything else.
public enum SlurmDuration {
    public static func minutes(_ text: String) -> Int? {
        var days = 0
        var rest = Substring(text)
        let hasDays = rest.contains("-")
        if let dash = rest.firstIndex(of: "-") {
            guard let value = Int(rest[..<dash]), value >= 0 else { return nil }
            days = value
            rest = rest[rest.index(after: dash)...]
        }
        var fields: [Int] = []
        for field in rest.split(separator: ":", omittingEmptySubsequences: false) {
            guard let value = Int(field), value >= 0 else { return nil }
            fields.append(value)
        }
        let seconds: Int
        switch (hasDays, fields.count) {
        case (false, 1): seconds = fields[0] * 60
        case (false, 2): seconds = fields[0] * 60 + fields[1]
        case (_, 3): seconds = fields[0] * 3600 + fields[1] * 60 + fields[2]
        case (true, 1): seconds = fields[0] * 3600
        case (true, 2): seconds = fields[0] * 3600 + fields[1] * 60
        default: return nil
        }
        return (days * 86400 + seconds + 59) / 60
    }
}
