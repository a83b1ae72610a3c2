import Foundation
import Testing
@testable import Report

@Suite struct ReportPartsTests {
    func temporaryFile(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString).csv").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Quoted fields (commas, doubled quotes, a newline), CRLF, an empty field and a last row
    /// without a line end, read through a buffer smaller than a row (every row straddles a refill).
    @Test(arguments: [5, 16, 1 << 20])
    func csvFieldsAsWritten(buffer: Int) throws {
        let path = try temporaryFile("a,b,c\r\n\"x,1\",2.5,\n\"say \"\"hi\"\"\",-inf,\"two\nlines\"\nlast,1e-300,nan")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var rows: [[String]] = []
        var numbers: [Double] = []
        try CSVReader(path: path, bufferBytes: buffer).forEachRow { row in
            rows.append((0..<row.count).map(row.string))
            numbers.append(row.double(1))
        }
        #expect(rows == [["a", "b", "c"], ["x,1", "2.5", ""], ["say \"hi\"", "-inf", "two\nlines"], ["last", "1e-300", "nan"]])
        #expect(numbers[1] == 2.5 && numbers[2] == -.infinity && numbers[3] == 1e-300)
        #expect(numbers[0].isNaN)
    }

    @Test func lambdaIsTheMedianChiSquareOverItsMedian() {
        var p = PValues()
        for value in [0.5, 0.01, 0.9, 0.2, 0.7] { p.add(value) }
        p.add(.nan)
        p.finish()
        // Median p 0.5: χ²₁ upper quantile 0.454936423119572…
        #expect(abs(p.lambda - 0.454936423119572 / 0.4549364) < 1e-12)
        #expect(p.missing == 1)
        #expect(p.histogram.reduce(0, +) == 5)
        var even = PValues()
        for value in [0.05, 1.0] { even.add(value) }
        even.finish()
        // Mean of χ²(0.05) = 3.841458820694124 and χ²(1) = 0.
        #expect(abs(even.lambda - 3.841458820694124 / 2 / 0.4549364) < 1e-12)
    }

    @Test func volcanoGridKeepsEveryCountWhileWidening() {
        var volcano = Volcano(columns: 8, rows: 4, highlights: 3)
        var generator = SystemRandomNumberGenerator()
        var expected = 0
        for row in 0..<2000 {
            let x = Double.random(in: -50...50, using: &generator)
            let p = pow(10, -Double.random(in: 0...30, using: &generator))
            volcano.add(x: x, p: p, significant: p < 1e-10, row: row) { "g\(row)" }
            expected += 1
        }
        volcano.add(x: -.infinity, p: 0.5, significant: false, row: 2000) { "" }
        #expect(volcano.cells.reduce(0) { $0 + $1.count } == expected)
        #expect(volcano.offScale == 1)
        for cell in volcano.cells { #expect(cell.x.lowerBound >= -volcano.dx * 4 && cell.x.upperBound <= volcano.dx * 4) }
        #expect(volcano.highlights.count == 3)
    }

    @Test func smallestKeepsTheFirstInOrder() {
        var kept = Smallest<Int>(4, by: <)
        for value in [9, 3, 7, 1, 8, 2, 6, 5, 4, 0] { kept.add(value) }
        #expect(kept.sorted == [0, 1, 2, 3])
    }

    /// A 6-gene ranking with hits at 0 and 2: +3/4, −1/4, +1/4, then three misses of −1/4.
    @Test func gseaRunningSum() {
        let running = GSEAPlot.runningSum(ranked: [3, 2, 1, -1, -2, -3], hits: [0, 2])
        let expected = [0.75, 0.5, 0.75, 0.5, 0.25, 0.0]
        for (a, b) in zip(running, expected) { #expect(abs(a - b) < 1e-12) }
        #expect(running.max { abs($0) < abs($1) } == 0.75)
        let svg = GSEAPlot.render(ranked: (0..<5000).map { 2 - Double($0) / 1250 }, hits: [1, 40, 300, 4000], term: "HALLMARK_X",
                                  es: 0.61, nes: 1.9, id: "g0")
        #expect(svg.contains("HALLMARK_X: ES 0.61, NES 1.9"))
        #expect(svg.components(separatedBy: "class=\"hit\"").count - 1 == 4)
    }
}
