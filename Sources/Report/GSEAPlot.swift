import Foundation
import Stats

/// The GSEA enrichment plot, kept apart from any run format: it takes the ranking, one set's hit
/// positions and the table's ES/NES, so the GSEA analysis can hand over what it stores in its
/// run directory without this file changing.
enum GSEAPlot {
    /// The running enrichment score at every position of `ranked` (the gene ranking metric, best
    /// first): the engine's RES, the same sum the leading edge is placed on (each hit adds
    /// |r|^weight over the hits' total, each miss subtracts 1 over the misses' count). Hits that
    /// all weigh 0 step equally, as weight 0 would.
    static func runningSum(ranked: [Double], hits: [Int], weight: Double = 1) -> [Double] {
        let positions = Set(hits.filter { ranked.indices.contains($0) }).sorted().map(Int32.init)
        var weights = GSEA.weights(ranking: ranked, weight: weight)
        if positions.allSatisfy({ weights[Int($0)] == 0 }) { weights = GSEA.weights(ranking: ranked, weight: 0) }
        return GSEA.runningEnrichmentScore(weights: weights, hits: positions)
    }

    /// Three stacked panels sharing the rank axis: the running sum (with ES marked), a tick per
    /// hit, and the ranking metric. Long rankings are drawn as each pixel column's extremes.
    static func render(ranked: [Double], hits: [Int], term: String, es: Double, nes: Double, id: String,
                       weight: Double = 1, width: Double = 460) -> String {
        let running = runningSum(ranked: ranked, hits: hits, weight: weight)
        let n = max(1, ranked.count)
        let low = min(0, running.min() ?? 0), high = max(0, running.max() ?? 0)
        let pad = max(0.05, (high - low) * 0.08)
        var top = Chart(id: "\(id)-es", width: width, height: 250, x: 0...Double(n), y: (low - pad)...(high + pad))
        let columns = Int(top.x.pixels.upperBound - top.x.pixels.lowerBound)
        var path = ""
        for (column, range) in columnRanges(count: running.count, columns: columns).enumerated() {
            let slice = running[range]
            let (a, b) = (slice.min()!, slice.max()!)
            let x = top.x(Double(range.lowerBound))
            path += (column == 0 ? "M" : "L") + "\(px(x)) \(px(top.y(a)))L\(px(x)) \(px(top.y(b)))"
        }
        top.add("<line class=\"zero\" x1=\"\(px(top.x(0)))\" y1=\"\(px(top.y(0)))\" x2=\"\(px(top.x(Double(n))))\" y2=\"\(px(top.y(0)))\"/>")
        top.add("<path class=\"running\" d=\"\(path)\"/>")
        // The enrichment score is the walk's largest deviation from zero: marked where it is reached.
        if let peak = running.indices.max(by: { abs(running[$0]) < abs(running[$1]) }) {
            top.add("<line class=\"cut\" x1=\"\(px(top.x(Double(peak))))\" y1=\"\(px(top.y(0)))\" x2=\"\(px(top.x(Double(peak))))\" y2=\"\(px(top.y(running[peak])))\"/>")
        }
        let title = "\(term): ES \(short(es)), NES \(short(nes))"
        var out = "<div class=\"gsea\">" + top.svg(title: title, xLabel: "", yLabel: "running ES")

        var ticks = Chart(id: "\(id)-hits", width: width, height: 100, x: 0...Double(n), y: 0...1)
        for hit in Set(hits) where ranked.indices.contains(hit) {
            let x = ticks.x(Double(hit))
            ticks.add("<line class=\"hit\" x1=\"\(px(x))\" y1=\"\(px(ticks.y(0)))\" x2=\"\(px(x))\" y2=\"\(px(ticks.y(1)))\"/>")
        }
        out += ticks.svg(title: "\(Set(hits).count) genes of the set", xLabel: "", yLabel: "", xTicks: [], yTicks: [])

        let metricLow = min(0, ranked.min() ?? 0), metricHigh = max(0, ranked.max() ?? 0)
        var metric = Chart(id: "\(id)-metric", width: width, height: 150, x: 0...Double(n), y: metricLow...max(metricHigh, metricLow + 1e-9))
        var area = "M\(px(metric.x(0))) \(px(metric.y(0)))"
        for range in columnRanges(count: ranked.count, columns: columns) {
            let slice = ranked[range]
            let extreme = slice.max { abs($0) < abs($1) }!
            area += "L\(px(metric.x(Double(range.lowerBound)))) \(px(metric.y(extreme)))"
        }
        area += "L\(px(metric.x(Double(n)))) \(px(metric.y(0)))Z"
        metric.add("<path class=\"metric\" d=\"\(area)\"/>")
        out += metric.svg(title: "Ranking metric", xLabel: "rank in the ordered gene list", yLabel: "metric") + "</div>"
        return out
    }

    /// `count` positions split into at most `columns` contiguous ranges.
    static func columnRanges(count: Int, columns: Int) -> [Range<Int>] {
        guard count > 0 else { return [] }
        let parts = max(1, min(count, columns))
        return (0..<parts).map { k in (k * count / parts)..<((k + 1) * count / parts) }.filter { !$0.isEmpty }
    }
}
