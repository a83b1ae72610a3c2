/// The options of `plan de`, with pdex 0.1.28's defaults. Codable: they travel in plan.json.
public struct DEParameters: Sendable, Codable, Equatable {
    public enum Metric: String, Sendable, Codable, CaseIterable {
        case wilcoxon, anderson
        case tTest = "t-test"
    }

    /// What each target is compared with. In plan.json: the label, or `"rest"`.
    public enum Reference: Sendable, Codable, Equatable {
        /// The cells whose label is this (pdex's `reference`).
        case label(String)
        /// Every cell not in the target (one-vs-rest).
        case rest

        public init(_ text: String) { self = text == "rest" ? .rest : .label(text) }

        public var text: String {
            switch self {
            case .label(let label): label
            case .rest: "rest"
            }
        }

        public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(text)
        }
    }

    public enum Log1p: String, Sendable, Codable {
        case auto, yes = "true", no = "false"
    }

    public var groupbyKey = "target_gene"
    public var reference = Reference.label("non-targeting")
    /// Targets to keep (nil = all), as pdex's `groups`.
    public var groups: [String]?
    public var metric = Metric.wilcoxon
    /// pdex's `tie_correct`: toggles scipy's continuity correction (the tie variance is always on).
    public var continuityCorrection = true
    public var isLog1p = Log1p.auto
    public var expPostAggregation = true
    /// nil = no clipping (pdex `clip_value=None`).
    public var clipValue: Double? = 20
    /// Matrix to test: nil = X.
    public var layer: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case reference, groups, metric, layer
        case groupbyKey = "groupby_key", continuityCorrection = "continuity_correction", isLog1p = "is_log1p"
        case expPostAggregation = "exp_post_agg", clipValue = "clip_value"
    }
}
