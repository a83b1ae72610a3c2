/// The options of `plan did`, with sctrial 1.0's defaults (`TrialDesign`, `did_table`).
public struct DiDParameters: Sendable, Codable, Equatable {
    public enum Aggregate: String, Sendable, Codable, CaseIterable {
        case participantVisit = "participant_visit"
        case participantVisitCelltype = "participant_visit_celltype"
        case cell
    }

    public enum Statistic: String, Sendable, Codable, CaseIterable {
        case mean, median
        /// Percentage (0–100) of the group's cells with a value above 0 (sctrial documents it
        /// but raises; REFERENCE-SEMANTICS §8.3).
        case pctPos = "pct_pos"
    }

    /// Which features are tested. In plan.json: `"all"`, `"sets"`, or a list of names.
    public enum Features: Sendable, Codable, Equatable {
        /// Every gene of the analysed matrix (after --min-gene-counts).
        case allGenes
        /// Named genes or numeric obs columns (obs wins over a gene of the same name).
        case named([String])
        /// Every gene-set score, in the order of the GMT file.
        case allSets

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let names = try? container.decode([String].self) { self = .named(names); return }
            switch try container.decode(String.self) {
            case "all": self = .allGenes
            case "sets": self = .allSets
            case let other:
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "features must be \"all\", \"sets\" or a list, not \"\(other)\"")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .allGenes: try container.encode("all")
            case .allSets: try container.encode("sets")
            case .named(let names): try container.encode(names)
            }
        }
    }

    public struct GeneSets: Sendable, Codable, Equatable {
        public struct Set: Sendable, Codable, Equatable {
            public var name: String
            public var genes: [String]

            public init(name: String, genes: [String]) {
                self.name = name
                self.genes = genes
            }
        }

        /// The GMT path or http(s) URL they came from (fetched once, at planning).
        public var source: String
        public var prefix = ""
        public var method = GeneSetScoring.Method.zmean
        public var minGenes = 3
        /// The sets as read at planning, so workers never fetch.
        public var sets: [Set]

        public init(source: String, sets: [Set]) {
            self.source = source
            self.sets = sets
        }

        enum CodingKeys: String, CodingKey { case source, prefix, method, sets, minGenes = "min_genes" }
    }

    public struct Bootstrap: Sendable, Codable, Equatable {
        public var draws = 999
        public var seed: UInt64 = 42
        public init() {}
    }

    public var participantCol = "participant_id"
    public var visitCol = "visit"
    public var armCol = "arm"
    public var treated = "Treated"
    /// Recorded for the user's benefit; did_table does not use it (every non-treated label is control).
    public var control = "Control"
    public var celltypeCol: String? = "celltype"
    public var crossoverCol: String?
    public var visits: [String] = []
    /// One cell type (`did_table(celltype=)`), or nil.
    public var celltype: String?
    /// `did_table_by_celltype`.
    public var byCelltype = false
    /// The cell types of `--by-celltype` (nil = every non-missing label, sorted).
    public var celltypes: [String]?
    public var features = Features.allGenes
    public var geneSets: GeneSets?
    /// Matrix of the gene features (nil = X).
    public var layer: String?
    /// Counts layer to turn into log1p-CPM features (overrides `layer`).
    public var log1pCPMFrom: String?
    /// Drop genes whose total count (in the counts source) is below this.
    public var minGeneCounts: Double?
    public var aggregate = Aggregate.participantVisit
    public var statistic = Statistic.mean
    public var covariates: [String] = []
    public var standardize = true
    public var bootstrap: Bootstrap?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case treated, control, visits, celltype, celltypes, features, layer, aggregate, covariates, standardize, bootstrap
        case participantCol = "participant_col", visitCol = "visit_col", armCol = "arm_col", celltypeCol = "celltype_col"
        case crossoverCol = "crossover_col", byCelltype = "by_celltype", geneSets = "gene_sets", log1pCPMFrom = "log1p_cpm_from"
        case minGeneCounts = "min_gene_counts", statistic = "agg"
    }
}
