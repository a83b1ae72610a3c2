import Foundation
@testable import Stats
import Testing

@Suite struct BenjaminiHochbergTests {
    /// Bit-identical to each reference: the flavours differ from each other only in the last bit
    /// (p/(k/m) vs p·(m/k)), so anything looser could not tell them apart.
    @Test func matchesReferencesBitForBit() {
        let cases = DEGoldens.shared.bh
        #expect(cases.count > 30)
        var flavoursDiffer = false
        for c in cases {
            let statsmodels = BenjaminiHochberg.statsmodels(c.p)
            switch c.statsmodels {
            case .values(let expected): #expect(Self.bits(statsmodels) == Self.bits(expected), "\(c.name) statsmodels")
            case .error(let name): Issue.record("\(c.name): statsmodels raised \(name)")
            }
            switch c.scipy {
            case .values(let expected):
                let scipy = try? BenjaminiHochberg.scipy(c.p)
                #expect(scipy.map(Self.bits) == Self.bits(expected), "\(c.name) scipy")
                if let scipy, Self.bits(scipy) != Self.bits(statsmodels) { flavoursDiffer = true }
            case .error(let name):
                #expect(name == "ValueError")
                #expect(throws: BenjaminiHochbergError.self, "\(c.name)") { try BenjaminiHochberg.scipy(c.p) }
            }
        }
        #expect(flavoursDiffer, "the goldens should exercise the last-bit difference")
    }

    @Test func edgeSizesAndErrors() throws {
        #expect(BenjaminiHochberg.statsmodels([]) == [])
        #expect(try BenjaminiHochberg.scipy([]) == [])
        #expect(throws: BenjaminiHochbergError.pValueOutOfRange(index: 1, value: 1.5)) {
            try BenjaminiHochberg.scipy([0.2, 1.5])
        }
        #expect(BenjaminiHochberg.statsmodels([0.2, .nan]).allSatisfy { $0.isNaN })
    }

    private static func bits(_ values: [Double]) -> [UInt64] { values.map(\.bitPattern) }
}

@Suite struct AscendingOrderTests {
    /// The radix order equals a comparison sort's (stable), across signs, zeros, ties, tiny and
    /// huge magnitudes.
    @Test func radixOrderMatchesAStableSort() {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [0, 1, 1, 0.5, 0.5, 1e-300, 5e-324, -2, -1e-10, 3e10, 0.25]
        for _ in 0..<5000 {
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: values.append(Double.random(in: 0...1, using: &generator))
            case 1: values.append(values.randomElement(using: &generator)!)
            case 2: values.append(Double.random(in: -1e6...1e6, using: &generator))
            default: values.append(pow(10, Double.random(in: -300...0, using: &generator)))
            }
        }
        let expected = values.indices.sorted { values[$0] < values[$1] || (values[$0] == values[$1] && $0 < $1) }.map { UInt32($0) }
        #expect(BenjaminiHochberg.ascendingOrder(values) == expected)
        #expect(BenjaminiHochberg.ascendingOrder([]) == [])
        #expect(BenjaminiHochberg.ascendingOrder([0.3]) == [0])
    }
}
