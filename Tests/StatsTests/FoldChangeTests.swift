import Stats
import Testing

/// pdex 0.1.28 `_fold_change` / `_percent_change` (REFERENCE-SEMANTICS §3.5); the expected values
/// are what those functions return for the same float64 means.
@Suite struct FoldChangeTests {
    @Test func clippedRules() throws {
        let rule = try FoldChange()  // clip_value = 20
        #expect(rule.foldChange(target: 0, reference: 0) == 1)
        #expect(rule.foldChange(target: 3, reference: 0) == 20)
        #expect(rule.foldChange(target: 0, reference: 3) == 0.05)
        #expect(rule.foldChange(target: 3, reference: 1.5) == 2)
        // Large finite ratios are not clipped.
        #expect(rule.foldChange(target: 1000, reference: 0.001) == 1_000_000)
        #expect(rule.foldChange(target: .nan, reference: 1).isNaN)
        #expect(try FoldChange(clip: 8).foldChange(target: 0, reference: 2) == 0.125)
    }

    @Test func unclippedRules() throws {
        let rule = try FoldChange(clip: nil)
        #expect(rule.foldChange(target: 0, reference: 0).isNaN)
        #expect(rule.foldChange(target: 3, reference: 0).isNaN)
        #expect(rule.foldChange(target: 0, reference: 3) == 0)
        #expect(rule.foldChange(target: 0.3, reference: 0.1) == 0.3 / 0.1)
    }

    @Test func percentChangeIsAFraction() {
        #expect(FoldChange.percentChange(target: 3, reference: 2) == 0.5)
        #expect(FoldChange.percentChange(target: 0, reference: 2) == -1)
        #expect(FoldChange.percentChange(target: 1, reference: 0).isNaN)
        #expect(FoldChange.percentChange(target: 0, reference: 0).isNaN)
    }

    @Test func rejectsUnusableClip() {
        #expect(throws: FoldChangeError.invalidClip(0)) { try FoldChange(clip: 0) }
        #expect(throws: FoldChangeError.self) { try FoldChange(clip: .infinity) }
        #expect(throws: FoldChangeError.self) { try FoldChange(clip: .nan) }
    }
}
