import Foundation
import HTTP

/// Talks to slurmrestd over HTTP with a JWT (`scontrol token`), for machines without Slurm's
/// commands. The token only ever goes into a request header: it is not part of the value's
/// description, and any server text that echoes it is redacted before it reaches an error.
public struct SlurmRESTClient: SlurmClient, CustomStringConvertible, CustomReflectable {
    /// The REST API versions this client speaks, newest first. They differ in the job description
    /// (v0.0.39 made time and memory `{set, infinite, number}` and the environment a list, v0.0.41
    /// moved the script into the job), in job records (v0.0.40 made `job_state` a list) and in
    /// cancel answers (v0.0.42 reports each job's outcome in a `status` list, errors left empty).
    /// Slurm 22.05 serves v0.0.38 (and v0.0.37); Slurm 24.11 serves v0.0.40, v0.0.41 and v0.0.42.
    public enum APIVersion: String, CaseIterable, Sendable, Comparable {
        case v0_0_42 = "v0.0.42", v0_0_41 = "v0.0.41", v0_0_40 = "v0.0.40", v0_0_39 = "v0.0.39", v0_0_38 = "v0.0.38"

        public static func < (lhs: APIVersion, rhs: APIVersion) -> Bool {
            allCases.firstIndex(of: lhs)! > allCases.firstIndex(of: rhs)!
        }
    }

    /// e.g. "http://127.0.0.1:6820", without a trailing slash.
    public let baseURL: String
    public let version: APIVersion
    /// Sent as X-SLURM-USER-NAME (slurmrestd 22.05 requires it); the token's user.
    public let userName: String
    /// MaxArraySize as the site configured it: no REST version reports it (v0.0.42 neither), so it
    /// is given here (Slurm's default unless told otherwise; `scontrol show config` says).
    public let configuredMaxArraySize: Int
    public let timeoutSeconds: Int
    /// The environment jobs are submitted with (slurmrestd requires one; sbatch sends the caller's).
    public let jobEnvironment: [String: String]
    private let token: String

    /// A client for a known API version; `connect` asks the server which one it serves.
    public init(baseURL: String, token: String, version: APIVersion, userName: String = SlurmRESTClient.currentUserName,
                maxArraySize: Int = SlurmArraySplit.defaultMaxArraySize, timeoutSeconds: Int = 30,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.version = version
        self.userName = userName
        self.configuredMaxArraySize = maxArraySize
        self.timeoutSeconds = timeoutSeconds
        // Scrubbed like the command client's, and never carrying the token under any name.
        self.jobEnvironment = SlurmEnvironment.scrubbed(environment).filter { token.isEmpty || !$0.value.contains(token) }
    }

    /// Connects to slurmrestd at `baseURL` and picks the newest API version it serves. The ping
    /// must reach slurmctld: 24.11 answers a token slurmctld refuses with HTTP 200 and "DOWN".
    public static func connect(baseURL: String, token: String, userName: String = currentUserName,
                               maxArraySize: Int = SlurmArraySplit.defaultMaxArraySize, timeoutSeconds: Int = 30,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws(SlurmError) -> SlurmRESTClient {
        for version in APIVersion.allCases {
            let client = SlurmRESTClient(baseURL: baseURL, token: token, version: version, userName: userName,
                                         maxArraySize: maxArraySize, timeoutSeconds: timeoutSeconds, environment: environment)
            let response = try client.send(.get, "ping")
            if response.status == 404 { continue }
            let object = try client.checked(response, operation: "slurmrestd ping")
            if !pingReachedController(object) { throw .controllerNotResponding(url: client.baseURL) }
            return client
        }
        throw .unsupportedAPI(url: baseURL)
    }

    public var description: String { "SlurmRESTClient(\(baseURL), \(version.rawValue), user \(userName))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": baseURL, "version": version, "userName": userName], displayStyle: .struct)
    }

    public static var currentUserName: String {
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "root"
    }

    // MARK: - SlurmClient

    public func submit(_ request: SlurmJobRequest) throws(SlurmError) -> JobID {
        try request.validate()
        let body = try Self.json(Self.submitBody(for: request, version: version, environment: jobEnvironment))
        let operation = "slurmrestd job submission '\(request.name)'"
        let object = try checked(send(.post, "job/submit", body: body), operation: operation)
        guard let id = Self.integer(object["job_id"]) ?? Self.integer((object["result"] as? [String: Any])?["job_id"]), id > 0 else {
            throw .unreadableOutput(source: "slurmrestd job submission", detail: "no job_id in the response")
        }
        return JobID(id)
    }

    public func states(of jobs: [JobID]) throws(SlurmError) -> [JobID: JobState] {
        var records: [SlurmStateRecord] = []
        for id in Set(jobs.map(\.id)).sorted() {
            let operation = "slurmrestd job \(id)"
            let response = try send(.get, "job/\(id)")
            if let errors = Self.errorEntries(response.body), errors.contains(where: Self.isInvalidJobID) {
                continue  // forgotten by the controller: collate reports it unknown
            }
            let object = try checked(response, operation: operation)
            records += try Self.records(fromJobs: object["jobs"])
        }
        return SlurmStateRecord.collate(records, requested: jobs)
    }

    public func cancel(_ job: JobID) throws(SlurmError) {
        let operation = "slurmrestd cancel \(job)"
        let response = try send(.delete, "job/\(job)")
        // Already finished, or finished long enough ago to be forgotten: nothing left to cancel.
        if let errors = Self.errorEntries(response.body),
           !errors.isEmpty, errors.allSatisfy({ Self.isInvalidJobID($0) || Self.isAlreadyDone($0) }) {
            return
        }
        let object = try checked(response, operation: operation)
        // v0.0.42 answers HTTP 200 and puts each job's outcome in `status`, the same way.
        let failures = Self.statusErrors(object).filter { !Self.isInvalidJobID($0) && !Self.isAlreadyDone($0) }
        if !failures.isEmpty {
            throw .rejected(operation: operation, messages: failures.map { redacted(SlurmError.oneLine(Self.message(of: $0))) })
        }
    }

    public func maxArraySize() throws(SlurmError) -> Int { configuredMaxArraySize }

    // MARK: - Request and response shapes (pure, tested per version)

    /// The JSON body of POST job/submit for `version`.
    static func submitBody(for request: SlurmJobRequest, version: APIVersion, environment: [String: String]) -> [String: Any] {
        var job: [String: Any] = ["name": request.name]
        let resources = request.resources
        if let array = request.array { job["array"] = array.specification }
        if let partition = resources.partition { job["partition"] = partition }
        if let account = resources.account { job["account"] = account }
        if let qos = resources.qos { job["qos"] = qos }
        if let directory = request.workingDirectory { job["current_working_directory"] = directory }
        if let output = request.outputPath { job["standard_output"] = output }
        if let cpus = resources.cpusPerTask { job["cpus_per_task"] = cpus }
        if let dependency = request.dependency, let specification = dependency.specification {
            job["dependency"] = specification
        }
        let killOnInvalid = request.dependency.map { $0.specification != nil && $0.killOnInvalid } ?? false
        if version == .v0_0_38 {
            if let minutes = resources.timeLimitMinutes { job["time_limit"] = minutes }
            if let memory = resources.memoryMB { job["memory_per_node"] = memory }
            if killOnInvalid { job["kill_on_invalid_dependency"] = true }
            job["environment"] = environment
            return ["script": request.script, "job": job]
        }
        func number(_ value: Int) -> [String: Any] { ["set": true, "infinite": false, "number": value] }
        if let minutes = resources.timeLimitMinutes { job["time_limit"] = number(minutes) }
        if let memory = resources.memoryMB { job["memory_per_node"] = number(memory) }
        if killOnInvalid { job["flags"] = ["KILL_INVALID_DEPENDENCY"] }
        job["environment"] = environment.keys.sorted().map { "\($0)=\(environment[$0]!)" }
        if version >= .v0_0_41 {
            job["script"] = request.script
            return ["job": job]
        }
        return ["script": request.script, "job": job]
    }

    /// State records from a response's `jobs` list, whichever version wrote it: ids as plain
    /// numbers or `{set, number}`, `job_state` as a string or a list of flags.
    static func records(fromJobs value: Any?) throws(SlurmError) -> [SlurmStateRecord] {
        guard let jobs = value as? [[String: Any]] else {
            throw .unreadableOutput(source: "slurmrestd", detail: "the response has no jobs list")
        }
        return try jobs.map { job throws(SlurmError) in
            guard let jobID = integer(job["job_id"]) else {
                throw .unreadableOutput(source: "slurmrestd", detail: "a job record without job_id")
            }
            let stateText: String
            if let text = job["job_state"] as? String {
                stateText = text
            } else if let list = job["job_state"] as? [String], let first = list.first {
                stateText = first
            } else {
                stateText = ""
            }
            let state = JobState(slurm: stateText)
            guard let arrayID = integer(job["array_job_id"]), arrayID > 0 else {
                return SlurmStateRecord(id: jobID, tasks: nil, state: state)
            }
            if let task = integer(job["array_task_id"]) {
                return SlurmStateRecord(id: arrayID, tasks: [task], state: state)
            }
            guard let text = job["array_task_string"] as? String, let indices = SlurmArrayIndices(slurm: text) else {
                throw .unreadableOutput(source: "slurmrestd", detail: "array job \(arrayID) record names no task")
            }
            return SlurmStateRecord(id: arrayID, tasks: indices.values, state: state)
        }
    }

    /// A JSON integer, or the `number` of a set `{set, infinite, number}`; nil for NO_VAL and unset.
    static func integer(_ value: Any?) -> Int? {
        if let object = value as? [String: Any] {
            guard (object["set"] as? Bool) == true, (object["infinite"] as? Bool) != true else { return nil }
            return integer(object["number"])
        }
        guard let number = value as? NSNumber else { return nil }
        let integer = number.intValue
        // Slurm's NO_VAL (0xfffffffe) and INFINITE (0xffffffff) mean "none" here.
        return integer >= 0xFFFF_FFFE ? nil : integer
    }

    /// The `errors` entries of a JSON body, or nil when the body is not JSON.
    static func errorEntries(_ body: [UInt8]) -> [[String: Any]]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        return object["errors"] as? [[String: Any]] ?? []
    }

    /// The failed entries of a v0.0.42 cancel answer's `status` list (`{error: {string, code,
    /// message}, step_id, job_id}`), as error entries like those of `errors`.
    static func statusErrors(_ object: [String: Any]) -> [[String: Any]] {
        ((object["status"] as? [[String: Any]]) ?? []).compactMap { entry in
            guard let error = entry["error"] as? [String: Any], let code = integer(error["code"]), code != 0 else { return nil }
            var converted: [String: Any] = ["error_number": code]
            converted["error"] = error["string"] ?? error["message"]
            if let step = entry["step_id"] as? String { converted["description"] = "job \(step)" }
            return converted
        }
    }

    /// Whether a ping answer says slurmctld answered: v0.0.38 `ping`, later `pinged` ("UP" or
    /// "DOWN"), v0.0.42 also `responding`. An answer without pings is taken as reached.
    static func pingReachedController(_ object: [String: Any]) -> Bool {
        guard let pings = object["pings"] as? [[String: Any]], !pings.isEmpty else { return true }
        return pings.contains { ping in
            if let responding = ping["responding"] as? Bool, !responding { return false }
            let state = (ping["pinged"] as? String) ?? (ping["ping"] as? String)
            return state == nil || state == "UP"
        }
    }

    /// Slurm's words for one error: "error" (and "description" when it adds something), with the number.
    static func message(of error: [String: Any]) -> String {
        let summary = (error["error"] as? String) ?? ""
        let detail = (error["description"] as? String) ?? ""
        var text = summary.isEmpty ? detail : (detail.isEmpty || detail == summary ? summary : "\(summary): \(detail)")
        if text.isEmpty { text = "unspecified error" }
        if let number = integer(error["error_number"]) ?? integer(error["error_code"]) ?? integer(error["errno"]), number != 0 {
            text += " (error \(number))"
        }
        return text
    }

    /// ESLURM_INVALID_JOB_ID: the controller does not (or no longer) know the job.
    static func isInvalidJobID(_ error: [String: Any]) -> Bool {
        let number = integer(error["error_number"]) ?? integer(error["error_code"])
        return number == 2017 || (error["error"] as? String) == "Invalid job id specified"
    }

    /// SLURM_ERROR with no reason: what slurmctld's authentication failure becomes in 22.05's REST
    /// answers (a request it could not verify), so the token is the thing to renew.
    static func isUnspecified(_ error: [String: Any]) -> Bool {
        let number = integer(error["error_number"]) ?? integer(error["error_code"])
        return (number == nil || number == -1) && (error["error"] as? String) == "Unspecified error"
    }

    /// SLURM_PROTOCOL_AUTHENTICATION_ERROR: how slurmctld 24.11 refuses a token slurmrestd passed
    /// on (HTTP 511), so the token is the thing to renew.
    static func isAuthenticationError(_ error: [String: Any]) -> Bool {
        let number = integer(error["error_number"]) ?? integer(error["error_code"])
        return number == 1007 || (error["error"] as? String) == "Protocol authentication error"
    }

    /// ESLURM_ALREADY_DONE: the job or step already completed.
    static func isAlreadyDone(_ error: [String: Any]) -> Bool {
        let number = integer(error["error_number"]) ?? integer(error["error_code"])
        return number == 2021 || ((error["error"] as? String)?.contains("already completing or completed") ?? false)
    }

    static func json(_ object: [String: Any]) throws(SlurmError) -> [UInt8] {
        do {
            return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        } catch {
            throw .invalidRequest("the job description is not valid JSON: \(error.localizedDescription)")
        }
    }

    // MARK: - HTTP

    private func send(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil) throws(SlurmError) -> HTTPResponse {
        var headers = ["Accept: application/json", "X-SLURM-USER-NAME: \(userName)", "X-SLURM-USER-TOKEN: \(token)"]
        if body != nil { headers.append("Content-Type: application/json") }
        do {
            return try HTTPClient.send(method, "\(baseURL)/slurm/\(version.rawValue)/\(path)", headers: headers, body: body,
                                       timeoutSeconds: timeoutSeconds, followRedirects: false)
        } catch {
            switch error.kind {
            case .couldNotConnect:
                throw .unreachable(url: baseURL, reason: "connection refused or host unreachable (is slurmrestd running?)")
            default:
                throw .unreachable(url: baseURL, reason: redacted(error.reason))
            }
        }
    }

    /// The JSON object of a successful response; Slurm's own errors, auth failures and other
    /// statuses become typed errors.
    func checked(_ response: HTTPResponse, operation: String) throws(SlurmError) -> [String: Any] {
        if response.status == 401 || response.status == 403 || response.status == 511 {
            throw .unauthorized(url: baseURL, status: response.status)
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        if let errors = object?["errors"] as? [[String: Any]], !errors.isEmpty {
            if errors.allSatisfy(Self.isUnspecified) || errors.allSatisfy(Self.isAuthenticationError) {
                throw .unauthorized(url: baseURL, status: response.status)
            }
            throw .rejected(operation: operation, messages: errors.map { redacted(SlurmError.oneLine(Self.message(of: $0))) })
        }
        guard (200..<300).contains(response.status) else {
            throw .httpStatus(url: "\(baseURL)/slurm/\(version.rawValue)", status: response.status)
        }
        guard let object else {
            throw .unreadableOutput(source: operation, detail: "the response is not a JSON object")
        }
        return object
    }

    private func redacted(_ text: String) -> String {
        token.isEmpty ? text : text.replacingOccurrences(of: token, with: "<token>")
    }
}
