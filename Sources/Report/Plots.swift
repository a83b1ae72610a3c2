import Foundation

/// The charts the sections share, each an inline `<svg>` string.
enum Plots {
    /// A volcano: the density of every point (grey cells, darker = more), the most significant
    /// points over it (red: effect > 0, blue: < 0) with their names as tooltips, and a dashed line
    /// at the largest significant p-value. Points beyond the axes sit on the edge as triangles.
    static func volcano(_ volcano: Volcano, id: String, title: String, xLabel: String,
                        width: Double = 440, height: Double = 330, resolution: (Int, Int) = (96, 64)) -> String {
        let cells = volcano.cells
        let points = volcano.highlights.sorted
        // x: symmetric, covering 99.9% of the density and the drawn points (those at most 4×
        // beyond it: one absurd fold change must not squash the rest to a line).
        let masses = cells.map { (reach: max(abs($0.x.lowerBound), abs($0.x.upperBound)), count: $0.count) }
            .sorted { $0.reach < $1.reach }
        var covered = 0, densityReach = 0.0
        let wanted = Int((Double(cells.reduce(0) { $0 + $1.count }) * 0.999).rounded(.up))
        for mass in masses where covered < wanted {
            covered += mass.count
            densityReach = mass.reach
        }
        let pointReach = points.map { abs($0.x) }.filter(\.isFinite).max() ?? 0
        var xLimit = max(densityReach, densityReach > 0 ? min(pointReach, 4 * densityReach) : pointReach)
        if !(xLimit > 0) { xLimit = 1 }
        xLimit *= 1.05
        let yTop = max(cells.map(\.y.upperBound).max() ?? 0, points.map(\.y).filter(\.isFinite).max() ?? 0, 1) * 1.05
        var chart = Chart(id: id, width: width, height: height, x: -xLimit...xLimit, y: 0...yTop)

        // Density re-binned to the display resolution.
        let (columns, rows) = resolution
        var display = [Int](repeating: 0, count: columns * rows)
        for cell in cells {
            let cx = (cell.x.lowerBound + cell.x.upperBound) / 2, cy = (cell.y.lowerBound + cell.y.upperBound) / 2
            let column = min(columns - 1, max(0, Int((cx + xLimit) / (2 * xLimit) * Double(columns))))
            let row = min(rows - 1, max(0, Int(cy / yTop * Double(rows))))
            display[row * columns + column] += cell.count
        }
        let most = Double(display.max() ?? 0)
        let (cellWidth, cellHeight) = (2 * xLimit / Double(columns), yTop / Double(rows))
        for row in 0..<rows {
            for column in 0..<columns where display[row * columns + column] > 0 {
                let count = Double(display[row * columns + column])
                let opacity = 0.12 + 0.88 * log1p(count) / log1p(most)
                let x0 = chart.x(-xLimit + Double(column) * cellWidth), x1 = chart.x(-xLimit + Double(column + 1) * cellWidth)
                let y0 = chart.y(Double(row + 1) * cellHeight), y1 = chart.y(Double(row) * cellHeight)
                chart.add("<rect class=\"density\" x=\"\(px(x0))\" y=\"\(px(y0))\" width=\"\(px(x1 - x0 + 0.3))\" height=\"\(px(y1 - y0 + 0.3))\" fill-opacity=\"\(String(format: "%.2f", opacity))\"/>")
            }
        }
        chart.add("<line class=\"zero\" x1=\"\(px(chart.x(0)))\" y1=\"\(px(chart.y(0)))\" x2=\"\(px(chart.x(0)))\" y2=\"\(px(chart.y(yTop)))\"/>")
        if let threshold = points.isEmpty ? nil : volcano.largestSignificantP, threshold > 0 {
            let at = chart.y(-log10(threshold))
            chart.add("<line class=\"cut\" x1=\"\(px(chart.x(-xLimit)))\" y1=\"\(px(at))\" x2=\"\(px(chart.x(xLimit)))\" y2=\"\(px(at))\"/>")
        }
        // Least significant first, so the strongest are drawn on top.
        for point in points.reversed() {
            let clampedX = min(max(point.x, -xLimit / 1.05 * 1.04), xLimit / 1.05 * 1.04)
            let clampedY = point.y.isFinite ? point.y : yTop / 1.05 * 1.04
            let (cx, cy) = (chart.x(clampedX), chart.y(clampedY))
            let kind = point.x > 0 ? "up" : "down"
            let tip = "<title>\(escaped(point.label)): \(escaped(xLabel)) \(short(point.x)), p \(short(point.p))</title>"
            if clampedX != point.x || clampedY != point.y {
                chart.add("<path class=\"\(kind)\" d=\"M\(px(cx)) \(px(cy - 3.5))l3.5 6h-7z\">\(tip)</path>")
            } else {
                chart.add("<circle class=\"\(kind)\" cx=\"\(px(cx))\" cy=\"\(px(cy))\" r=\"2.4\">\(tip)</circle>")
            }
        }
        return chart.svg(title: title, xLabel: xLabel, yLabel: "−log10 p")
    }

    /// The p-value histogram, with the count a uniform distribution would give dashed.
    static func histogram(_ p: PValues, id: String, title: String) -> String {
        let bins = p.histogram
        let top = Double(bins.max() ?? 1) * 1.08
        var chart = Chart(id: id, x: 0...1, y: 0...max(1, top))
        let width = 1 / Double(bins.count)
        for (k, count) in bins.enumerated() where count > 0 {
            let x0 = chart.x(Double(k) * width), x1 = chart.x(Double(k + 1) * width)
            let y0 = chart.y(Double(count))
            chart.add("<rect class=\"bar\" x=\"\(px(x0))\" y=\"\(px(y0))\" width=\"\(px(max(0.5, x1 - x0 - 1)))\" height=\"\(px(chart.y(0) - y0))\"><title>p in [\(short(Double(k) * width)), \(short(Double(k + 1) * width))): \(count)</title></rect>")
        }
        let uniform = chart.y(Double(p.values.count) / Double(bins.count))
        chart.add("<line class=\"cut\" x1=\"\(px(chart.x(0)))\" y1=\"\(px(uniform))\" x2=\"\(px(chart.x(1)))\" y2=\"\(px(uniform))\"/>")
        return chart.svg(title: title, xLabel: "p-value", yLabel: "rows")
    }

    /// Observed against expected −log10 p, with the diagonal and λ in the title.
    static func qq(_ p: PValues, id: String, title: String) -> String {
        let points = p.quantiles()
        let top = max(1, points.map(\.observed).max() ?? 1, points.map(\.expected).max() ?? 1) * 1.05
        let right = max(1, points.map(\.expected).max() ?? 1) * 1.05
        var chart = Chart(id: id, x: 0...right, y: 0...top)
        chart.add("<line class=\"diagonal\" x1=\"\(px(chart.x(0)))\" y1=\"\(px(chart.y(0)))\" x2=\"\(px(chart.x(min(right, top))))\" y2=\"\(px(chart.y(min(right, top))))\"/>")
        for point in points {
            chart.add("<circle class=\"qq\" cx=\"\(px(chart.x(point.expected)))\" cy=\"\(px(chart.y(point.observed)))\" r=\"1.8\"/>")
        }
        return chart.svg(title: "\(title) (λ = \(String(format: "%.4f", p.lambda)))", xLabel: "expected −log10 p", yLabel: "observed −log10 p")
    }

    /// Horizontal bars, one per label, longest first as given.
    static func bars(_ items: [(label: String, value: Int)], title: String, valueLabel: String) -> String {
        let rowHeight = 16.0, left = 150.0, right = 60.0, width = 640.0
        let height = 40 + rowHeight * Double(max(1, items.count)) + 34
        let most = Double(max(1, items.map(\.value).max() ?? 1))
        var out = "<svg class=\"chart\" viewBox=\"0 0 \(px(width)) \(px(height))\" width=\"\(px(width))\" height=\"\(px(height))\" role=\"img\" aria-label=\"\(escaped(title))\">"
        out += "<text class=\"title\" x=\"10\" y=\"18\">\(escaped(title))</text>"
        for (k, item) in items.enumerated() {
            let y = 32 + Double(k) * rowHeight
            let length = (width - left - right) * Double(item.value) / most
            out += "<text class=\"tick\" x=\"\(px(left - 6))\" y=\"\(px(y + 11))\" text-anchor=\"end\">\(escaped(item.label))</text>"
            out += "<rect class=\"bar\" x=\"\(px(left))\" y=\"\(px(y + 2))\" width=\"\(px(max(0.5, length)))\" height=\"\(px(rowHeight - 4))\"><title>\(escaped(item.label)): \(item.value)</title></rect>"
            out += "<text class=\"tick\" x=\"\(px(left + length + 4))\" y=\"\(px(y + 11))\">\(item.value)</text>"
        }
        out += "<text class=\"label\" x=\"\(px((left + width - right) / 2))\" y=\"\(px(height - 8))\" text-anchor=\"middle\">\(escaped(valueLabel))</text></svg>"
        return out
    }

    /// A table of rows as results.csv holds them: numeric cells show 4 significant digits with
    /// the exact text as a tooltip; `numeric` names the numeric columns.
    static func table(columns: [String], rows: [[String]], numeric: Set<String>, id: String) -> String {
        var out = "<table id=\"\(id)\"><thead><tr>"
        for column in columns { out += "<th>\(escaped(column))</th>" }
        out += "</tr></thead><tbody>"
        for row in rows {
            out += "<tr>"
            for (column, text) in zip(columns, row) {
                if numeric.contains(column) {
                    let shown = text.isEmpty ? "NaN" : (Double(text).map(short) ?? text)
                    out += "<td class=\"num\" title=\"\(escaped(text))\">\(escaped(shown))</td>"
                } else {
                    out += "<td>\(escaped(text))</td>"
                }
            }
            out += "</tr>"
        }
        return out + "</tbody></table>"
    }
}
