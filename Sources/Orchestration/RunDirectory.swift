import Foundation

/// The run directory: the single source of truth for one run (layout in docs/plan-json.md).
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path).standardizedFileURL }

    public var path: String { url.path }
    public var planURL: URL { url.appendingPathComponent("plan.json") }
    public var planTextURL: URL { url.appendingPathComponent("plan.txt") }
    public var resultsURL: URL { url.appendingPathComponent("results.csv") }
    /// Where `reduce --allow-partial` writes a table that lacks shards.
    public var partialResultsURL: URL { url.appendingPathComponent("results.partial.csv") }
    public var summaryURL: URL { url.appendingPathComponent("summary.json") }
    public var partsURL: URL { url.appendingPathComponent("parts", isDirectory: true) }
    public var logsURL: URL { url.appendingPathComponent("logs", isDirectory: true) }
    public var stagedURL: URL { url.appendingPathComponent("staged") }

    /// "00042": `%05d` without String(format:), which costs more than the file access it names.
    static func shardName(_ index: Int) -> String {
        guard index >= 0 else { return String(format: "%05d", index) }
        let digits = String(index)
        return String(repeating: "0", count: max(0, 5 - digits.count)) + digits
    }

    // Per-shard paths say what they are: without `isDirectory`, Foundation stats the path (and the
    // parts directory) to find out; `status`, `submit` and `reduce` build several a shard.
    public func partURL(_ shard: Int) -> URL { shardFile(shard, "part") }
    public func markerURL(_ shard: Int) -> URL { shardFile(shard, "done") }
    public func failureURL(_ shard: Int) -> URL { shardFile(shard, "failed") }
    func lockURL(_ shard: Int) -> URL { shardFile(shard, "lock") }
    public func logURL(_ shard: Int) -> URL { logsURL.appendingPathComponent("shard-\(Self.shardName(shard)).log", isDirectory: false) }

    private func shardFile(_ shard: Int, _ suffix: String) -> URL {
        partsURL.appendingPathComponent("\(Self.shardName(shard)).\(suffix)", isDirectory: false)
    }

    public func create() throws {
        for directory in [url, partsURL, logsURL] {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw OrchestrationError("\(directory.path): cannot create the run directory: \(error.localizedDescription)")
            }
        }
    }

    /// Planning again into a directory drops what the previous plan produced (its parts, logs,
    /// staged files and results), so nothing of it can be mistaken for this plan's.
    public func clearPreviousRun() throws {
        let manager = FileManager.default
        guard manager.fileExists(atPath: planURL.path) else { return }
        for item in [partsURL, logsURL, stagedURL, resultsURL, partialResultsURL, summaryURL, planURL, planTextURL]
        where manager.fileExists(atPath: item.path) {
            do { try manager.removeItem(at: item) } catch {
                throw OrchestrationError("\(item.path): cannot remove the previous plan's output: \(error.localizedDescription)")
            }
        }
    }

    public func write(_ plan: Plan) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(plan), to: planURL)
    }

    public func readPlan() throws -> Plan {
        guard FileManager.default.fileExists(atPath: planURL.path) else {
            throw OrchestrationError("\(planURL.path): no plan in this run directory (create one with `sctrial-plan plan`)")
        }
        struct Header: Decodable { let format: String?; let version: Int? }
        let data: Data
        do { data = try Data(contentsOf: planURL) } catch {
            throw OrchestrationError("\(planURL.path): cannot read: \(error.localizedDescription)")
        }
        guard let header = try? JSONDecoder().decode(Header.self, from: data), header.format == Plan.format else {
            throw OrchestrationError("\(planURL.path): not a sctrial-plan plan")
        }
        guard header.version == Plan.currentVersion else {
            throw OrchestrationError("\(planURL.path): plan version \(header.version ?? 0) is not supported (this build reads version \(Plan.currentVersion)); plan the run again")
        }
        let plan: Plan
        do {
            plan = try JSONDecoder().decode(Plan.self, from: data)
        } catch {
            throw OrchestrationError("\(planURL.path): not a readable plan (\(error))")
        }
        // A hand-edited or damaged plan must not reach `start..<end` with start > end.
        for shard in plan.shards where shard.start < 0 || shard.end < shard.start {
            throw OrchestrationError("\(planURL.path): shard \(shard.index) has units \(shard.start)..<\(shard.end)")
        }
        return plan
    }

    /// A file under the run directory, named relative to it in plan.json.
    public func resolve(_ relative: String) -> URL { url.appendingPathComponent(relative) }
}
