import Stats

/// Preranked GSEA's settings: sctrial's ranking rule and gseapy `prerank`'s defaults as
/// `run_gsea_did` leaves them (GSEA-SEMANTICS §1.2, §2.1).
public struct GSEAParameters: Codable, Sendable, Equatable {
    /// How a DiD result ranks a gene (sctrial `_rank_did_results`).
    public enum RankBy: String, Codable, Sendable, CaseIterable {
        /// `sign(beta_DiD) * -log10(p_DiD + 1e-12)` (sctrial's `signed_confidence`).
        case signedLogP = "signed-logp"
        case beta
        /// `beta_DiD / (se_DiD + 1e-12)`.
        case tstat
    }

    /// Which gseapy draws the permutations: rand 0.9 (gseapy ≥ 1.1.8, e.g. 1.3.1) or rand 0.8.5
    /// (gseapy ≤ 1.1.4, which also pools FDR and FWER over every set).
    public enum RandomVersion: String, Codable, Sendable, CaseIterable {
        case v09 = "0.9"
        case v08 = "0.8"
    }

    public var rankBy = RankBy.signedLogP
    /// DiD rows with fewer units are left out of the ranking.
    public var minUnits = 4
    public var permutations = 1000
    public var minSize = 15
    public var maxSize = 500
    public var weight = 1.0
    public var seed: UInt64 = 123
    public var randomVersion = RandomVersion.v09

    public init() {}

    enum CodingKeys: String, CodingKey {
        case permutations, weight, seed
        case rankBy = "rank_by", minUnits = "min_units", minSize = "min_size", maxSize = "max_size"
        case randomVersion = "gseapy_rng"
    }

    var engineVersion: GSEARandomVersion { randomVersion == .v09 ? .rand09 : .rand08 }
    /// gseapy ≥ 1.3 pools FDR/FWER per library (term prefix before "__"); 1.1.x pools all.
    var pooling: GSEAPooling { randomVersion == .v09 ? .termPrefix : .all }
}
