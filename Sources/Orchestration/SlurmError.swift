import Foundation

/// Everything that can go wrong talking to Slurm, each said in one line that names what failed and,
/// where there is one, the way out. No case ever carries a token.
public enum SlurmError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request itself is wrong (checked before anything is sent).
    case invalidRequest(String)
    /// A Slurm command is not installed or not on PATH.
    case commandNotFound(String)
    /// A Slurm command exited non-zero; `message` is its stderr, folded to one line.
    case commandFailed(command: String, status: Int32, message: String)
    /// Output we could not read (a Slurm version printing something unexpected).
    case unreadableOutput(source: String, detail: String)
    /// slurmrestd could not be reached at all.
    case unreachable(url: String, reason: String)
    /// slurmrestd refused the token (HTTP 401/403), or slurmctld did (22.05 answers HTTP 500 with
    /// nothing but "Unspecified error" entries then, 24.11 HTTP 511 "Protocol authentication error").
    case unauthorized(url: String, status: Int)
    /// slurmrestd answers but its ping did not reach slurmctld (24.11 says "DOWN" with HTTP 200 both
    /// when the controller is down and when it refused the token).
    case controllerNotResponding(url: String)
    /// Slurm said no: its own messages from the response's `errors` array.
    case rejected(operation: String, messages: [String])
    /// An HTTP status without Slurm errors to explain it.
    case httpStatus(url: String, status: Int)
    /// slurmrestd serves none of the API versions this client speaks.
    case unsupportedAPI(url: String)
    /// `waitUntilDone` gave up; the jobs named are still pending or running.
    case waitTimedOut(seconds: Int, unfinished: [JobID])

    public var description: String {
        switch self {
        case .invalidRequest(let why):
            return "invalid Slurm request: \(why)"
        case .commandNotFound(let command):
            return "\(command): not found on PATH; install Slurm's client commands (Debian: slurm-client) or submit through slurmrestd"
        case .commandFailed(let command, let status, let message):
            return "\(command) failed (exit \(status))" + (message.isEmpty ? "" : ": \(message)")
        case .unreadableOutput(let source, let detail):
            return "could not read the output of \(source): \(detail)"
        case .unreachable(let url, let reason):
            return "cannot reach slurmrestd at \(url): \(reason)"
        case .unauthorized(let url, let status):
            let refusal: String
            switch status {
            case 401, 403:
                refusal = "slurmrestd at \(url) refused the token (HTTP \(status)): it is missing, expired or for another user"
            case 511:
                refusal = "slurmctld behind \(url) refused the token (HTTP 511, Protocol authentication error): it is invalid or expired"
            default:
                refusal = "slurmctld behind \(url) refused the request without a reason (HTTP \(status)), which is how slurmrestd 22.05 "
                    + "reports an invalid or expired token"
            }
            return refusal + "; get a new one with `scontrol token lifespan=SECONDS` and export it as SLURM_JWT"
        case .controllerNotResponding(let url):
            return "slurmrestd at \(url) answers but slurmctld does not (ping: DOWN): the controller is down or refused the token; "
                + "check `scontrol ping`, or get a new token with `scontrol token lifespan=SECONDS` and export it as SLURM_JWT"
        case .rejected(let operation, let messages):
            return "\(operation): Slurm said: " + (messages.isEmpty ? "no reason given" : messages.joined(separator: "; "))
        case .httpStatus(let url, let status):
            return "slurmrestd at \(url) answered HTTP \(status)"
        case .unsupportedAPI(let url):
            return "slurmrestd at \(url) serves none of the REST API versions "
                + SlurmRESTClient.APIVersion.allCases.map(\.rawValue).joined(separator: ", ")
        case .waitTimedOut(let seconds, let unfinished):
            let shown = unfinished.prefix(5).map(\.description).joined(separator: ", ")
            return "gave up after \(seconds) s waiting for Slurm jobs: \(unfinished.count) unfinished (\(shown)\(unfinished.count > 5 ? ", …" : ""))"
        }
    }

    /// One line from text that may span several (stderr, Slurm messages).
    static func oneLine(_ text: some StringProtocol) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
    }
}
