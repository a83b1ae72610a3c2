/// Why a fold-change rule cannot be built.
public enum FoldChangeError: Error, Equatable, Sendable {
    /// pdex divides 1 by the clip value when the target mean is zero: zero raises there, and a
    /// NaN or infinite clip would only produce meaningless ratios.
    case invalidClip(Double)
}

/// pdex 0.1.28's fold change and percent change of a target mean over a reference mean
/// (REFERENCE-SEMANTICS §3.5). Means are taken as given: the caller applies pdex's log1p/expm1
/// convention. Only zero means are clipped; a finite ratio is never limited to [1/c, c].
public struct FoldChange: Sendable, Equatable {
    /// pdex's `clip_value` (default 20); `nil` turns zero-mean cases into NaN / 0 instead.
    public let clip: Double?

    public init(clip: Double? = 20) throws(FoldChangeError) {
        if let clip, clip == 0 || !clip.isFinite { throw .invalidClip(clip) }
        self.clip = clip
    }

    /// μ_t/μ_r with pdex's rules, in priority order: both zero → 1 (NaN without clip); μ_r = 0 →
    /// c (NaN without clip); μ_t = 0 → 1/c (0 without clip).
    public func foldChange(target: Double, reference: Double) -> Double {
        if target == 0 && reference == 0 { return clip == nil ? .nan : 1 }
        if reference == 0 { return clip ?? .nan }
        if target == 0 { return clip.map { 1 / $0 } ?? 0 }
        return target / reference
    }

    /// (μ_t − μ_r)/μ_r, a fraction (not ×100); NaN when μ_r = 0, as pdex.
    public static func percentChange(target: Double, reference: Double) -> Double {
        reference == 0 ? .nan : (target - reference) / reference
    }
}
