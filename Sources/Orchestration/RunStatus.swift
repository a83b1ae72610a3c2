import Foundation

/// Where a run stands, from the run directory alone (markers are the truth; a scheduler's view
/// can only add detail).
public struct RunStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// `pending` only comes from Slurm's view (`submit`ted runs).
        case done, running, pending, failed, missing
    }

    public struct Shard: Codable, Sendable, Equatable {
        public var index: Int
        public var state: State
        public var rows: Int?
        public var seconds: Double?
        public var message: String?
    }

    public var runID: String
    public var total: Int
    public var done: Int
    public var running: Int
    public var pending: Int
    public var failed: Int
    public var missing: Int
    /// results.csv is there (the run was reduced).
    public var reduced: Bool
    public var shards: [Shard]

    enum CodingKeys: String, CodingKey {
        case total, done, running, pending, failed, missing, reduced, shards
        case runID = "run_id"
    }

    public static func read(_ run: RunDirectory) throws -> RunStatus {
        let plan = try run.readPlan()
        let shards = plan.shards.indices.map { index -> Shard in
            if let marker = ShardWorker.doneMarker(plan, run: run, shard: index) {
                return Shard(index: index, state: .done, rows: marker.rows, seconds: marker.seconds)
            }
            if ShardLock.isHeld(run.lockURL(index)) { return Shard(index: index, state: .running) }
            if let failure = ShardFailure.read(run.failureURL(index)) {
                return Shard(index: index, state: .failed, message: failure.message)
            }
            return Shard(index: index, state: .missing)
        }
        var status = RunStatus(runID: plan.runID, total: shards.count, done: 0, running: 0, pending: 0, failed: 0, missing: 0,
                               reduced: FileManager.default.fileExists(atPath: run.resultsURL.path), shards: shards)
        status.recount()
        return status
    }

    mutating func recount() {
        func count(_ state: State) -> Int { shards.filter { $0.state == state }.count }
        (done, running, pending, failed, missing) = (count(.done), count(.running), count(.pending), count(.failed), count(.missing))
    }

    /// Lines for a person: the totals, then every shard that is not done.
    public var text: String {
        let percent = total == 0 ? 100 : 100 * done / total
        var lines = ["run \(runID): \(done)/\(total) shards done (\(percent)%), \(running) running, \(pending) pending, \(failed) failed, \(missing) missing\(reduced ? "; results.csv written" : "")"]
        for shard in shards where shard.state != .done {
            lines.append("  shard \(shard.index): \(shard.state.rawValue)\(shard.message.map { ": \($0)" } ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}
