import Foundation

/// Talks to Slurm through its commands (sbatch, squeue, sacct, scancel, scontrol), as a user on a
/// login node would. Every command runs with the environment scrubbed of inherited Slurm variables
/// (SLURM_CONF kept), so a submission from inside a job does not inherit that job's identity.
public struct SlurmCommandClient: SlurmClient {
    /// What the commands (and, through sbatch's default --export=ALL, the jobs) see.
    public let environment: [String: String]
    /// `scontrol show config`, read once per client: `states` asks whether accounting is on at
    /// every poll where a job has left squeue, which would otherwise cost the controller one more
    /// RPC (REQUEST_BUILD_INFO) per poll for the rest of a long wait.
    private let config = ConfigCache()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = SlurmEnvironment.scrubbed(environment)
    }

    public func submit(_ request: SlurmJobRequest) throws(SlurmError) -> JobID {
        try request.validate()
        let output = try run("sbatch", Self.sbatchArguments(for: request), stdin: request.script)
        // --parsable prints "id" or "id;cluster".
        let text = output.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        guard let id = JobID(text), id.task == nil else {
            throw .unreadableOutput(source: "sbatch --parsable", detail: "expected a job id, got '\(SlurmError.oneLine(output))'")
        }
        return id
    }

    public func states(of jobs: [JobID]) throws(SlurmError) -> [JobID: JobState] {
        guard !jobs.isEmpty else { return [:] }
        let ids = Array(Set(jobs.map(\.id))).sorted().map(String.init).joined(separator: ",")
        // --states=all keeps finished jobs for MinJobAge; --array lists every task, pending ones too.
        let squeue: String
        do {
            squeue = try run("squeue", ["--noheader", "--array", "--states=all", "--jobs=\(ids)", "--format=%F|%K|%T"])
        } catch .commandFailed(_, _, let message) where message.contains("Invalid job id") {
            squeue = ""  // a lone id Slurm has forgotten: nothing to list
        }
        var records = try Self.parseRecords(squeue, source: "squeue")
        let seen = Set(records.map(\.id))
        let missing = Array(Set(jobs.map(\.id)).subtracting(seen)).sorted()
        if !missing.isEmpty, try accountingEnabled() {
            let sacct = try run("sacct", ["--noheader", "--parsable2", "--allocations", "--jobs=" + missing.map(String.init).joined(separator: ","),
                                          "--format=JobID,State"])
            records += try Self.parseSacct(sacct)
        }
        return SlurmStateRecord.collate(records, requested: jobs)
    }

    public func cancel(_ job: JobID) throws(SlurmError) {
        do {
            _ = try run("scancel", [job.description])
        } catch .commandFailed(_, _, let message) where message.contains("already completing or completed") {
            return
        }
    }

    public func maxArraySize() throws(SlurmError) -> Int {
        let value = try configValue("MaxArraySize")
        guard let size = Int(value), size >= 1 else {
            throw .unreadableOutput(source: "scontrol show config", detail: "MaxArraySize is '\(value)'")
        }
        return size
    }

    /// The ceilings of `partition` (the default partition when nil) from `scontrol show
    /// partition` and the RealMemory of its nodes; nil when scontrol cannot say.
    public func partitionLimits(_ partition: String?) throws(SlurmError) -> SlurmPartitionLimits {
        let partitions = try run("scontrol", ["show", "partition", "--oneliner"] + (partition.map { [$0] } ?? []))
        let nodes = try run("scontrol", ["show", "node", "--oneliner"])
        guard let limits = Self.parsePartitionLimits(partitions: partitions, nodes: nodes, partition: partition) else {
            throw .unreadableOutput(source: "scontrol show partition", detail: partition.map { "no partition '\($0)'" } ?? "no default partition")
        }
        return limits
    }

    /// `scontrol show partition/node --oneliner` lines to the partition's ceilings.
    static func parsePartitionLimits(partitions: String, nodes: String, partition: String?) -> SlurmPartitionLimits? {
        func fields(_ line: Substring) -> [String: String] {
            var result: [String: String] = [:]
            for word in line.split(separator: " ") {
                let pair = word.split(separator: "=", maxSplits: 1)
                if pair.count == 2 { result[String(pair[0])] = String(pair[1]) }
            }
            return result
        }
        let all = partitions.split(whereSeparator: \.isNewline).map(fields)
        guard let chosen = all.first(where: { partition == nil ? $0["Default"] == "YES" : $0["PartitionName"] == partition }),
              let name = chosen["PartitionName"] else { return nil }
        var limits = SlurmPartitionLimits()
        if let text = chosen["MaxTime"], text != "UNLIMITED" { limits.maxTimeMinutes = SlurmDuration.minutes(text) }
        if let text = chosen["MaxMemPerNode"], let value = Int(text) { limits.maxMemoryMB = value }
        let memories = nodes.split(whereSeparator: \.isNewline).map(fields).filter {
            ($0["Partitions"] ?? "").split(separator: ",").contains(Substring(name))
        }.compactMap { $0["RealMemory"].flatMap(Int.init) }
        if let largest = memories.max() { limits.maxMemoryMB = min(limits.maxMemoryMB ?? largest, largest) }
        return limits
    }

    /// False when slurm.conf says accounting_storage/none: then sacct has nothing to say.
    public func accountingEnabled() throws(SlurmError) -> Bool {
        Self.accountingEnabled(storageType: try configValue("AccountingStorageType"))
    }

    /// `scontrol show config`'s AccountingStorageType without accounting: 22.05 prints
    /// "accounting_storage/none", 24.11 "(null)".
    static func accountingEnabled(storageType: String) -> Bool {
        !["", "(null)", "accounting_storage/none"].contains(storageType)
    }

    // MARK: - Pure parts (tested without Slurm)

    /// sbatch's options for `request`; the script itself goes on standard input.
    static func sbatchArguments(for request: SlurmJobRequest) -> [String] {
        var arguments = ["--parsable", "--job-name=\(request.name)"]
        if let array = request.array { arguments.append("--array=\(array.specification)") }
        let resources = request.resources
        if let partition = resources.partition { arguments.append("--partition=\(partition)") }
        if let account = resources.account { arguments.append("--account=\(account)") }
        if let qos = resources.qos { arguments.append("--qos=\(qos)") }
        if let minutes = resources.timeLimitMinutes { arguments.append("--time=\(minutes)") }
        if let memory = resources.memoryMB { arguments.append("--mem=\(memory)M") }
        if let cpus = resources.cpusPerTask { arguments.append("--cpus-per-task=\(cpus)") }
        if let dependency = request.dependency, let specification = dependency.specification {
            arguments.append("--dependency=\(specification)")
            arguments.append(dependency.killOnInvalid ? "--kill-on-invalid-dep=yes" : "--kill-on-invalid-dep=no")
        }
        if let directory = request.workingDirectory { arguments.append("--chdir=\(directory)") }
        if let output = request.outputPath { arguments.append("--output=\(output)") }
        return arguments
    }

    /// squeue's `%F|%K|%T` lines: array id (or job id), task id ("N/A", "3" or "2-4%2"), state.
    static func parseRecords(_ text: String, source: String) throws(SlurmError) -> [SlurmStateRecord] {
        var records: [SlurmStateRecord] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 3, let id = Int(fields[0]) else {
                throw .unreadableOutput(source: source, detail: "unexpected line '\(line)'")
            }
            let tasks: [Int]?
            if fields[1] == "N/A" {
                tasks = nil
            } else if let indices = SlurmArrayIndices(slurm: fields[1]) {
                tasks = indices.values
            } else {
                throw .unreadableOutput(source: source, detail: "unexpected array task '\(fields[1])' in '\(line)'")
            }
            records.append(SlurmStateRecord(id: id, tasks: tasks, state: JobState(slurm: fields[2])))
        }
        return records
    }

    /// sacct's `JobID|State` lines: "12", "12_3" or "12_[4-6]"; steps ("12.batch") are skipped.
    static func parseSacct(_ text: String) throws(SlurmError) -> [SlurmStateRecord] {
        var records: [SlurmStateRecord] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.allSatisfy(\.isWhitespace) {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            guard fields.count == 2 else { throw .unreadableOutput(source: "sacct", detail: "unexpected line '\(line)'") }
            let job = fields[0]
            if job.contains(".") { continue }
            let parts = job.split(separator: "_", maxSplits: 1)
            guard let id = Int(parts[0]) else { throw .unreadableOutput(source: "sacct", detail: "unexpected job id '\(job)'") }
            var tasks: [Int]? = nil
            if parts.count == 2 {
                guard let indices = SlurmArrayIndices(slurm: parts[1]) else {
                    throw .unreadableOutput(source: "sacct", detail: "unexpected array task '\(job)'")
                }
                tasks = indices.values
            }
            records.append(SlurmStateRecord(id: id, tasks: tasks, state: JobState(slurm: fields[1])))
        }
        return records
    }

    /// A value from `scontrol show config` ("Name = value" lines); the command runs once per
    /// client (a failure is not remembered).
    func configValue(_ name: String) throws(SlurmError) -> String {
        let output: String
        if let cached = config.text {
            output = cached
        } else {
            output = try run("scontrol", ["show", "config"])
            config.text = output
        }
        for line in output.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        throw .unreadableOutput(source: "scontrol show config", detail: "no \(name) line")
    }

    // MARK: - Running commands

    /// Runs a Slurm command with the scrubbed environment and returns its standard output; a
    /// non-zero exit becomes `commandFailed` with stderr folded to one line.
    func run(_ command: String, _ arguments: [String], stdin: String? = nil) throws(SlurmError) -> String {
        guard let executable = Self.locate(command, path: environment["PATH"] ?? "/usr/bin:/bin") else {
            throw .commandNotFound(command)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        // Standard input from a file, not a pipe: a command that exits before reading all of it
        // cannot then kill us with SIGPIPE.
        var inputFile: URL? = nil
        defer { if let inputFile { try? FileManager.default.removeItem(at: inputFile) } }
        if let stdin {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-\(command)-\(UUID().uuidString).sh")
            guard FileManager.default.createFile(atPath: url.path, contents: Data(stdin.utf8), attributes: [.posixPermissions: 0o600]),
                  let handle = FileHandle(forReadingAtPath: url.path) else {
                throw .invalidRequest("could not write the script for \(command) to \(url.path)")
            }
            inputFile = url
            process.standardInput = handle
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        do {
            try process.run()
        } catch {
            throw .commandFailed(command: command, status: -1, message: "could not start \(executable): \(error.localizedDescription)")
        }
        // Both pipes drained at once, so neither side blocks on a full pipe buffer.
        let captured = CapturedOutput()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { captured.setOutput(output.fileHandleForReading.readDataToEndOfFile()) }
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        let stdout = String(decoding: captured.output, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let stderr = SlurmError.oneLine(String(decoding: errorData, as: UTF8.self))
            throw .commandFailed(command: command, status: process.terminationStatus, message: stderr)
        }
        return stdout
    }

    /// The first executable `command` on `path`.
    static func locate(_ command: String, path: String) -> String? {
        if command.contains("/") { return FileManager.default.isExecutableFile(atPath: command) ? command : nil }
        return path.split(separator: ":").map { "\($0)/\(command)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// The controller's configuration text once read; the lock makes sharing a client safe.
private final class ConfigCache: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?

    var text: String? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

/// Standard output read on another thread; the lock makes the hand-over safe.
private final class CapturedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    func setOutput(_ data: Data) { lock.withLock { self.data = data } }
    var output: Data { lock.withLock { data } }
}
