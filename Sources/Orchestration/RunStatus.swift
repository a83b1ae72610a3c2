import Foundation

/// Where a run stands, from the run directory alone (markers are the truth; a scheduler's view
/// can only add detail).
public struct RunStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case done, running, failed, missing
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
    public var failed: Int
    public var missing: Int
    /// results.csv is there (the run was reduced).
    public var reduced: Bool
    public var shards: [Shard]

    enum CodingKeys: String, CodingKey {
        case total, done, running, failed, missing, reduced, shards
        case runID = "run_id"
    }

    public static func read(_ run: RunDirectory) throws -> RunStatus {
        let plan = try run.readPlan()
        let shards = plan.shards.indices.map { index -> Shard in
            if ShardWorker.isDone(plan, run: run, shard: index) {
                let marker = ShardMarker.read(run.markerURL(index))
                return Shard(index: index, state: .done, rows: marker?.rows, seconds: marker?.seconds)
            }
            if ShardLock.isHeld(run.lockURL(index)) { return Shard(index: index, state: .running) }
            if let failure = ShardFailure.read(run.failureURL(index)) {
                return Shard(index: index, state: .failed, message: failure.message)
            }
            return Shard(index: index, state: .missing)
        }
        func count(_ state: State) -> Int { shards.filter { $0.state == state }.count }
        return RunStatus(runID: plan.runID, total: shards.count, done: count(.done), running: count(.running), failed: count(.failed),
                         missing: count(.missing), reduced: FileManager.default.fileExists(atPath: run.resultsURL.path), shards: shards)
    }

    /// Lines for a person: the totals, then every shard that is not done.
    public var text: String {
        let percent = total == 0 ? 100 : 100 * done / total
        var lines = ["run \(runID): \(done)/\(total) shards done (\(percent)%), \(running) running, \(failed) failed, \(missing) missing\(reduced ? "; results.csv written" : "")"]
        for shard in shards where shard.state != .done {
            lines.append("  shard \(shard.index): \(shard.state.rawValue)\(shard.message.map { ": \($0)" } ?? "")")
        }
        return lines.joined(separator: "\n")
    }
}
