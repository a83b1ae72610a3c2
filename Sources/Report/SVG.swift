import Foundation

/// Text for HTML and SVG: `&`, `<`, `>` and quotes escaped.
func escaped(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}

/// A number for a person: 4 significant digits (the exact value goes in a tooltip).
func short(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value > 0 ? "∞" : "−∞" }
    if value == 0 { return "0" }
    let magnitude = abs(value)
    if magnitude >= 1e-3 && magnitude < 1e5 {
        var text = String(format: "%.4g", value)
        if text.contains("e") { text = String(format: "%.1f", value) }
        return text
    }
    return String(format: "%.3e", value)
}

/// A tick label: round thousands and millions as 400k or 1.5M (axis labels must stay short).
func tickText(_ value: Double) -> String {
    let magnitude = abs(value)
    if magnitude >= 1e6 { return short(value / 1e6) + "M" }
    if magnitude >= 1e4 { return short(value / 1e3) + "k" }
    return short(value)
}

/// Coordinates with 1 decimal: enough for a screen, and half the bytes of full precision.
func px(_ value: Double) -> String { String(format: "%.1f", value) }

/// A linear map from data to pixels.
struct Scale {
    var domain: ClosedRange<Double>
    var pixels: ClosedRange<Double>
    /// Pixels grow downwards in SVG: a y scale maps its domain's low end to the bottom.
    var flipped = false

    func callAsFunction(_ value: Double) -> Double {
        let span = domain.upperBound - domain.lowerBound
        let t = span > 0 ? (value - domain.lowerBound) / span : 0.5
        let u = flipped ? 1 - t : t
        return pixels.lowerBound + u * (pixels.upperBound - pixels.lowerBound)
    }

    /// About `count` round tick values (1, 2 or 5 times a power of ten apart) inside the domain.
    func ticks(_ count: Int = 5) -> [Double] {
        let span = domain.upperBound - domain.lowerBound
        guard span > 0, span.isFinite else { return [domain.lowerBound] }
        let raw = span / Double(count)
        let power = pow(10, (log10(raw)).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? 10 * power
        var ticks: [Double] = []
        var tick = (domain.lowerBound / step).rounded(.up) * step
        while tick <= domain.upperBound + step * 1e-9 {
            ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
            tick += step
        }
        return ticks
    }
}

/// One SVG chart: a plotting area with axes, ticks and labels; marks are added in data
/// coordinates through `x` and `y`, clipped to the area.
struct Chart {
    static let margin = (left: 62.0, right: 14.0, top: 30.0, bottom: 46.0)
    let width: Double
    let height: Double
    let x: Scale
    let y: Scale
    let id: String
    var marks = ""

    init(id: String, width: Double = 440, height: Double = 330, x: ClosedRange<Double>, y: ClosedRange<Double>) {
        self.id = id
        self.width = width
        self.height = height
        self.x = Scale(domain: x, pixels: Self.margin.left...(width - Self.margin.right))
        self.y = Scale(domain: y, pixels: Self.margin.top...(height - Self.margin.bottom), flipped: true)
    }

    mutating func add(_ mark: String) { marks += mark }

    /// The chart as an `<svg>` element: title, grid, ticks, axis labels, then the marks.
    func svg(title: String, xLabel: String, yLabel: String, xTicks: [Double]? = nil, yTicks: [Double]? = nil) -> String {
        let (left, right) = (x.pixels.lowerBound, x.pixels.upperBound)
        let (top, bottom) = (y.pixels.lowerBound, y.pixels.upperBound)
        var out = "<svg class=\"chart\" viewBox=\"0 0 \(px(width)) \(px(height))\" width=\"\(px(width))\" height=\"\(px(height))\" role=\"img\" aria-label=\"\(escaped(title))\">"
        out += "<defs><clipPath id=\"clip-\(id)\"><rect x=\"\(px(left))\" y=\"\(px(top))\" width=\"\(px(right - left))\" height=\"\(px(bottom - top))\"/></clipPath></defs>"
        out += "<text class=\"title\" x=\"\(px(left))\" y=\"18\">\(escaped(title))</text>"
        for tick in xTicks ?? x.ticks() {
            let at = x(tick)
            out += "<line class=\"grid\" x1=\"\(px(at))\" y1=\"\(px(top))\" x2=\"\(px(at))\" y2=\"\(px(bottom))\"/>"
            out += "<text class=\"tick\" x=\"\(px(at))\" y=\"\(px(bottom + 15))\" text-anchor=\"middle\">\(escaped(tickText(tick)))</text>"
        }
        for tick in yTicks ?? y.ticks() {
            let at = y(tick)
            out += "<line class=\"grid\" x1=\"\(px(left))\" y1=\"\(px(at))\" x2=\"\(px(right))\" y2=\"\(px(at))\"/>"
            out += "<text class=\"tick\" x=\"\(px(left - 6))\" y=\"\(px(at + 4))\" text-anchor=\"end\">\(escaped(tickText(tick)))</text>"
        }
        out += "<rect class=\"frame\" x=\"\(px(left))\" y=\"\(px(top))\" width=\"\(px(right - left))\" height=\"\(px(bottom - top))\"/>"
        out += "<text class=\"label\" x=\"\(px((left + right) / 2))\" y=\"\(px(height - 8))\" text-anchor=\"middle\">\(escaped(xLabel))</text>"
        out += "<text class=\"label\" transform=\"translate(14 \(px((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escaped(yLabel))</text>"
        out += "<g clip-path=\"url(#clip-\(id))\">\(marks)</g></svg>"
        return out
    }
}
