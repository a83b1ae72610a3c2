import Foundation
import Orchestration

/// Every run's shards as their done markers recorded them: when each ran (start = finished_at −
/// seconds; finished_at has whole seconds), and the plan's estimates against measured seconds and
/// peak RSS.
enum ShardTimeline {
    struct Shard {
        var index: Int
        var marker: ShardMarker
        var planned: Plan.Shard
        var start: Double
        var end: Double
    }

    /// The shards with a marker of this plan.
    static func shards(_ plan: Plan, run: RunDirectory) -> [Shard] {
        let decoder = JSONDecoder()
        let dates = ISO8601DateFormatter()
        return plan.shards.compactMap { planned in
            guard let data = try? Data(contentsOf: run.markerURL(planned.index)),
                  let marker = try? decoder.decode(ShardMarker.self, from: data), marker.runID == plan.runID,
                  let finished = dates.date(from: marker.finishedAt) else { return nil }
            let end = finished.timeIntervalSince1970
            return Shard(index: planned.index, marker: marker, planned: planned, start: end - marker.seconds, end: end)
        }
    }

    static func render(_ plan: Plan, run: RunDirectory) -> PageBlock {
        let shards = shards(plan, run: run)
        guard !shards.isEmpty else {
            return PageBlock(id: "shards", heading: "Shards", html: "<p class=\"note\">No done markers of this plan in \(escaped(run.partsURL.path)).</p>")
        }
        let measured = shards.map(\.marker.seconds).reduce(0, +)
        let estimated = shards.map(\.planned.estimatedSeconds).reduce(0, +)
        let peak = shards.map(\.marker.peakRSSBytes).max() ?? 0
        let read = shards.map(\.marker.readBytes).reduce(0, +)
        let hosts = Set(shards.map(\.marker.host)).count
        let wall = (shards.map(\.end).max() ?? 0) - (shards.map(\.start).min() ?? 0)
        var html = "<p>\(shards.count) of \(plan.shards.count) shards done on \(hosts) host\(hosts == 1 ? "" : "s"): \(short(measured)) s of shard time (estimated \(short(estimated)) s), about \(short(wall)) s from first start to last finish; peak RSS up to \(megabytes(peak)) (planned \(short(plan.resources.memoryGB)) GB per worker); \(megabytes(read)) read.</p>"
        html += "<div class=\"figures\">" + gantt(shards) + scatter(shards, id: "shard-seconds", title: "Seconds per shard: estimate vs measured",
                                                                 xLabel: "estimated seconds", yLabel: "measured seconds",
                                                                 x: \.planned.estimatedSeconds, y: \.marker.seconds)
        html += scatter(shards, id: "shard-memory", title: "Memory per shard: estimate vs peak RSS", xLabel: "estimated MB", yLabel: "peak RSS MB",
                        x: { Double($0.planned.estimatedMemoryBytes) / 1e6 }, y: { Double($0.marker.peakRSSBytes) / 1e6 }) + "</div>"
        html += "<p class=\"note\">From RUN/parts/*.done. A shard's start is its finish time (whole seconds) minus its measured seconds; lanes are assigned greedily, so they show how many shards ran at once, not which worker ran them. Hover a bar or point for the shard. Dashed: measured = estimated.</p>"
        return PageBlock(id: "shards", heading: "Shards", html: html)
    }

    static func megabytes(_ bytes: Int) -> String {
        bytes >= 1 << 30 ? String(format: "%.2f GB", Double(bytes) / 1e9) : String(format: "%.1f MB", Double(bytes) / 1e6)
    }

    static func tip(_ shard: Shard) -> String {
        "<title>shard \(shard.index) on \(escaped(shard.marker.host)): \(short(shard.marker.seconds)) s (estimated \(short(shard.planned.estimatedSeconds)) s), peak RSS \(megabytes(shard.marker.peakRSSBytes)) (estimated \(megabytes(shard.planned.estimatedMemoryBytes))), \(shard.marker.rows) rows</title>"
    }

    /// Bars from start to finish, each in the first lane free at its start.
    static func gantt(_ shards: [Shard]) -> String {
        let t0 = shards.map(\.start).min() ?? 0
        var laneEnds: [Double] = []
        var placed: [(Shard, Int)] = []
        for shard in shards.sorted(by: { $0.start < $1.start || ($0.start == $1.start && $0.index < $1.index) }) {
            let lane = laneEnds.firstIndex { $0 <= shard.start + 1e-9 } ?? laneEnds.count
            if lane == laneEnds.count { laneEnds.append(shard.end) } else { laneEnds[lane] = shard.end }
            placed.append((shard, lane))
        }
        let span = max(1e-3, (shards.map(\.end).max() ?? 1) - t0)
        var chart = Chart(id: "gantt", x: 0...(span * 1.02), y: 0...Double(max(1, laneEnds.count)))
        let laneHeight = chart.y(0) - chart.y(1)
        for (shard, lane) in placed {
            let x0 = chart.x(shard.start - t0), x1 = chart.x(shard.end - t0)
            chart.add("<rect class=\"shard\" x=\"\(px(x0))\" y=\"\(px(chart.y(Double(lane + 1)) + laneHeight * 0.1))\" width=\"\(px(max(1, x1 - x0)))\" height=\"\(px(max(1, laneHeight * 0.8)))\">\(tip(shard))</rect>")
        }
        // Whole lanes only; at most about 8 labels.
        let step = max(1, laneEnds.count / 8)
        return chart.svg(title: "Timeline (\(shards.count) shards)", xLabel: "seconds since the first shard started", yLabel: "shards running at once",
                         yTicks: stride(from: 0, through: laneEnds.count, by: step).map(Double.init))
    }

    static func scatter(_ shards: [Shard], id: String, title: String, xLabel: String, yLabel: String,
                        x: (Shard) -> Double, y: (Shard) -> Double) -> String {
        let top = max(1e-3, shards.map(x).max() ?? 1, shards.map(y).max() ?? 1) * 1.08
        var chart = Chart(id: id, x: 0...top, y: 0...top)
        chart.add("<line class=\"cut\" x1=\"\(px(chart.x(0)))\" y1=\"\(px(chart.y(0)))\" x2=\"\(px(chart.x(top)))\" y2=\"\(px(chart.y(top)))\"/>")
        for shard in shards {
            chart.add("<circle class=\"shardpoint\" cx=\"\(px(chart.x(x(shard))))\" cy=\"\(px(chart.y(y(shard))))\" r=\"3.5\">\(tip(shard))</circle>")
        }
        return chart.svg(title: title, xLabel: xLabel, yLabel: yLabel)
    }
}
