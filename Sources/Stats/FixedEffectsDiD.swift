import COpenBLAS

// sctrial 1.0 `did_fit`: y* ~ visit_num + visit_num:arm_bin + C(participant) [+ covariates], WLS on
// n_cells (OLS without weights), pinv solver, CRV1 cluster-robust SE by participant with normal
// p-values, nonrobust fallback with t(N − rank) p-values, optional wild cluster bootstrap-t
// (REFERENCE-SEMANTICS §1.7, §1.8, §1.12, §1.13). Solved by the within transformation so the
// participant dummies never enter a matrix, and batched: one design, many outcome columns.

/// The regression rows that every feature shares: one row per participant × visit [× cell type]
/// unit (or per cell for OLS), with everything the formula needs except the outcome.
public struct DiDDesign: Sendable {
    /// How many treatment-coded levels a categorical column has, which sets K (§1.7.4).
    public enum Levels: Sendable, Equatable {
        /// The levels present in a feature's fitted rows (patsy on an object or integer column).
        case observed
        /// Every category of a pandas Categorical, used or not (their dummy columns are all zero
        /// but still count in K and so in the CRV1 factor).
        case categories(Int)
    }

    /// An extra term of the formula; a missing value drops the row for every feature.
    public enum Covariate: Sendable {
        /// One numeric column; NaN = missing.
        case numeric([Double])
        /// Level codes in patsy's level order (the first level is the reference); negative = missing.
        case categorical(codes: [Int], levels: Levels)
    }

    /// Participant (fixed effect and cluster) code per row; negative = missing. Codes must ascend
    /// in numpy's sort order of the labels, because bootstrap signs are dealt to the sorted labels.
    public let participant: [Int]
    public let participantLevels: Levels
    /// visit_num (0 = pre, 1 = post); NaN = missing.
    public let visit: [Double]
    /// arm_bin (1 = treated, 0 = anything else); NaN = missing.
    public let arm: [Double]
    /// n_cells per row for WLS; nil for OLS (cell-level rows). NaN = missing.
    public let weights: [Double]?
    public let covariates: [Covariate]

    /// Rows with no missing design value, ascending.
    let usableRows: [Int]
    /// One past the largest participant code.
    let participantCodeBound: Int

    var rowCount: Int { participant.count }

    /// Validates lengths, codes and values. Infinite values are rejected rather than passed on:
    /// statsmodels' SVD cannot take them either. Weights must be positive where present (sctrial
    /// would silently switch to OLS otherwise, which no aggregated input can trigger).
    public init(participant: [Int], participantLevels: Levels, visit: [Double], arm: [Double],
                weights: [Double]? = nil, covariates: [Covariate] = []) throws(DiDError) {
        let n = participant.count
        func checkLength(_ field: String, _ count: Int) throws(DiDError) {
            if count != n { throw .lengthMismatch(field: field, expected: n, actual: count) }
        }
        func checkCodes(_ field: String, _ codes: [Int], _ levels: Levels) throws(DiDError) {
            try checkLength(field, codes.count)
            guard case .categories(let count) = levels else { return }
            if count < 1 { throw .invalidLevelCount(field: field, count: count) }
            if let row = codes.firstIndex(where: { $0 >= count }) {
                throw .levelOutOfRange(field: field, row: row, code: codes[row], levels: count)
            }
        }
        func checkFinite(_ field: String, _ values: [Double]) throws(DiDError) {
            try checkLength(field, values.count)
            if let row = values.firstIndex(where: { $0.isInfinite }) { throw .infiniteValue(field: field, row: row) }
        }
        try checkCodes("participant", participant, participantLevels)
        try checkFinite("visit", visit)
        try checkFinite("arm", arm)
        if let weights {
            try checkLength("weights", weights.count)
            if let row = weights.firstIndex(where: { !$0.isNaN && !($0 > 0 && $0.isFinite) }) {
                throw .invalidWeight(row: row, value: weights[row])
            }
        }
        for (index, covariate) in covariates.enumerated() {
            switch covariate {
            case .numeric(let values): try checkFinite("covariate \(index)", values)
            case .categorical(let codes, let levels): try checkCodes("covariate \(index)", codes, levels)
            }
        }
        self.participant = participant
        self.participantLevels = participantLevels
        self.visit = visit
        self.arm = arm
        self.weights = weights
        self.covariates = covariates
        usableRows = (0..<n).filter { row in
            participant[row] >= 0 && !visit[row].isNaN && !arm[row].isNaN
                && !(weights?[row].isNaN ?? false)
                && covariates.allSatisfy { covariate in
                    switch covariate {
                    case .numeric(let values): !values[row].isNaN
                    case .categorical(let codes, _): codes[row] >= 0
                    }
                }
        }
        participantCodeBound = (participant.max() ?? -1) + 1
    }
}

public enum DiDError: Error, Equatable, Sendable {
    case lengthMismatch(field: String, expected: Int, actual: Int)
    case levelOutOfRange(field: String, row: Int, code: Int, levels: Int)
    case invalidLevelCount(field: String, count: Int)
    case infiniteValue(field: String, row: Int)
    case invalidWeight(row: Int, value: Double)
    /// `outcomes.count` is not rows × features.
    case outcomeCount(expected: Int, actual: Int)
    /// sctrial raises ValueError for n_boot < 1.
    case invalidDrawCount(Int)
    /// LAPACK dgesdd did not converge (info > 0) or rejected an argument (info < 0).
    case svdFailed(info: Int)
}

/// Wild cluster bootstrap settings (`use_bootstrap=True, n_boot, seed`); every feature restarts
/// the sign stream from `seed`, as did_table does.
public struct DiDBootstrapOptions: Sendable {
    public var draws: Int
    public var seed: UInt64
    public init(draws: Int = 999, seed: UInt64 = 42) {
        self.draws = draws
        self.seed = seed
    }
}

public struct DiDOptions: Sendable {
    /// z-score each outcome over its fitted rows first (sample SD, unweighted), as did_table does
    /// by default; an SD below 1e-8 or not finite gives a NaN row.
    public var standardize: Bool
    public var bootstrap: DiDBootstrapOptions?
    public init(standardize: Bool = true, bootstrap: DiDBootstrapOptions? = nil) {
        self.standardize = standardize
        self.bootstrap = bootstrap
    }
}

public enum DiDCovarianceType: String, Sendable {
    case cluster
    case nonrobust
}

/// Why a feature got an all-NaN row.
public enum DiDNaNReason: String, Sendable {
    /// Fewer than 4 participants in the fitted rows (§1.7.2).
    case fewerThanFourUnits
    /// The outcome's SD is NaN or infinite (e.g. an infinite value; §1.7.3).
    case nonFiniteStandardDeviation
    /// The outcome's SD is below 1e-8, e.g. a constant feature (§1.7.3).
    case zeroVariance
    /// N == K: statsmodels' CRV1 factor divides by zero and did_table aborts; we report the row.
    case saturated
}

public struct DiDBootstrapResult: Sendable {
    /// (#{|t_b| ≥ |t_obs|} + 1) / (valid draws + 1).
    public var pValue: Double
    /// SD (ddof 1) of the valid β_b.
    public var standardError: Double
    /// Bootstrap-t 95% interval β̂ − t₉₇.₅·se … β̂ − t₂.₅·se.
    public var ciLow: Double
    public var ciHigh: Double
    /// Draws with a finite, positive SE (0 when the observed SE was 0 or not finite).
    public var validDraws: Int

    public init(pValue: Double, standardError: Double, ciLow: Double, ciHigh: Double, validDraws: Int) {
        self.pValue = pValue
        self.standardError = standardError
        self.ciLow = ciLow
        self.ciHigh = ciHigh
        self.validDraws = validDraws
    }
}

/// One did_table row's numbers. With a bootstrap, `pDiD` is the bootstrap p-value (as in sctrial).
public struct DiDFeatureResult: Sendable {
    public var betaDiD: Double
    public var seDiD: Double
    public var pDiD: Double
    public var betaTime: Double
    public var pTime: Double
    /// Participants in the fitted rows.
    public var nUnits: Int
    /// sqrt(Σ w e² / (N − rank)); NaN on NaN rows (the reference omits the key).
    public var residSD: Double
    public var covType: DiDCovarianceType?
    public var nanReason: DiDNaNReason?
    public var bootstrap: DiDBootstrapResult?

    public init(betaDiD: Double, seDiD: Double, pDiD: Double, betaTime: Double, pTime: Double, nUnits: Int, residSD: Double,
                covType: DiDCovarianceType?, nanReason: DiDNaNReason?, bootstrap: DiDBootstrapResult?) {
        self.betaDiD = betaDiD
        self.seDiD = seDiD
        self.pDiD = pDiD
        self.betaTime = betaTime
        self.pTime = pTime
        self.nUnits = nUnits
        self.residSD = residSD
        self.covType = covType
        self.nanReason = nanReason
        self.bootstrap = bootstrap
    }

    static func nanRow(_ reason: DiDNaNReason, units: Int) -> DiDFeatureResult {
        DiDFeatureResult(betaDiD: .nan, seDiD: .nan, pDiD: .nan, betaTime: .nan, pTime: .nan,
                         nUnits: units, residSD: .nan, covType: nil, nanReason: reason, bootstrap: nil)
    }
}

/// How this project runs OpenBLAS: on one thread.
public enum BLASThreads {
    /// OpenBLAS splits a product across threads differently for different shapes, and the
    /// rounding follows the split; one thread keeps every feature's numbers the same whatever
    /// the sharding (the blocks are small: threads gained nothing measurable here). The pool it
    /// started at load is stopped too: idle, its threads spin (sched_yield) for about 0.1 s,
    /// taking a core from a short process. Executables touch this first thing.
    public static let single: Void = {
        openblas_set_num_threads(1)
        _ = blas_thread_shutdown_()
    }()
}

public enum FixedEffectsDiD {
    /// Features solved per BLAS call: large enough for dgemm to pay off, small enough that the
    /// block (rows × 256 doubles, plus the bootstrap's 2p·256 × draws products) stays in memory.
    static let blockSize = 256


    /// Fits every column of `outcomes` (column-major rows × `featureCount`, one column per feature,
    /// NaN = missing) against `design`. Rows missing in a feature are dropped for that feature only;
    /// features sharing the same rows share one factorisation.
    public static func fit(_ design: DiDDesign, outcomes: [Double], featureCount: Int,
                           options: DiDOptions = DiDOptions()) throws(DiDError) -> [DiDFeatureResult] {
        _ = BLASThreads.single
        let n = design.rowCount
        guard featureCount >= 0, outcomes.count == n * featureCount else {
            throw .outcomeCount(expected: n * max(featureCount, 0), actual: outcomes.count)
        }
        if let bootstrap = options.bootstrap, bootstrap.draws < 1 { throw .invalidDrawCount(bootstrap.draws) }
        var results = [DiDFeatureResult](repeating: .nanRow(.fewerThanFourUnits, units: 0), count: featureCount)
        let base = design.usableRows
        if base.isEmpty { return results }

        // Group features by their fitted rows; the all-rows group is the common case.
        var complete: [Int] = []
        var partial: [[Int]: [Int]] = [:]
        for feature in 0..<featureCount {
            let column = feature * n
            if base.allSatisfy({ !outcomes[column + $0].isNaN }) {
                complete.append(feature)
            } else {
                partial[base.filter { !outcomes[column + $0].isNaN }, default: []].append(feature)
            }
        }
        var signs: [Int: [Double]] = [:]
        var groups = partial.map { ($0.key, $0.value) }
        if !complete.isEmpty { groups.append((base, complete)) }
        for (rows, features) in groups {
            try fitGroup(design, rows: rows, features: features, outcomes: outcomes, options: options,
                         signs: &signs, results: &results)
        }
        return results
    }

    private static func fitGroup(_ design: DiDDesign, rows: [Int], features: [Int], outcomes: [Double],
                                 options: DiDOptions, signs: inout [Int: [Double]],
                                 results: inout [DiDFeatureResult]) throws(DiDError) {
        let clusters = ClusterIndex(design, rows: rows)
        guard clusters.count >= 4 else {
            for feature in features { results[feature] = .nanRow(.fewerThanFourUnits, units: clusters.count) }
            return
        }
        let within = try WithinDesign(design, rows: rows, clusters: clusters)
        var bootstrap: BootstrapPlan?
        if let settings = options.bootstrap {
            if signs[clusters.count] == nil {
                signs[clusters.count] = signMatrix(seed: settings.seed, draws: settings.draws, clusters: clusters.count)
            }
            bootstrap = BootstrapPlan(within: within, signs: signs[clusters.count]!, draws: settings.draws)
        }
        var block = FeatureBlock(within: within)
        var start = 0
        while start < features.count {
            let end = min(start + blockSize, features.count)
            block.solve(features[start..<end], design: design, outcomes: outcomes, standardize: options.standardize,
                        bootstrap: bootstrap, results: &results)
            start = end
        }
    }

    /// `rng.choice([-1, 1], size=G)` for each of `draws` draws, as a G × draws column-major matrix.
    static func signMatrix(seed: UInt64, draws: Int, clusters: Int) -> [Double] {
        var rng = NumpyRandom(seed: seed)
        var matrix: [Double] = []
        matrix.reserveCapacity(draws * clusters)
        for _ in 0..<draws {
            for sign in rng.signs(count: clusters) { matrix.append(Double(sign)) }
        }
        return matrix
    }
}

/// Participants present in a row subset, numbered 0..<count in code order (= numpy's sorted labels).
struct ClusterIndex {
    let ofRow: [Int]
    let count: Int

    init(_ design: DiDDesign, rows: [Int]) {
        var dense = [Int](repeating: -1, count: design.participantCodeBound)
        for row in rows { dense[design.participant[row]] = 0 }
        var next = 0
        for code in dense.indices where dense[code] == 0 {
            dense[code] = next
            next += 1
        }
        ofRow = rows.map { dense[design.participant[$0]] }
        count = next
    }
}

/// Everything about one row subset that does not depend on the outcome: the within-demeaned
/// regressors X̃ (visit_num in column 0, visit_num·arm_bin in column 1, covariates after), the
/// WLS hat operator P = pinv(W½X̃)W½ (β̂ = P·y for any y, because P sums to 0 over each
/// participant), the bread pinv(X̃'WX̃), the full model's rank and K, and the CRV1 factor.
struct WithinDesign {
    /// Design row of each subset row.
    let subset: [Int]
    let rows: Int
    let cluster: [Int]
    let clusterCount: Int
    let weight: [Double]
    let clusterWeight: [Double]
    let clusterSize: [Int]
    /// Columns of X̃; covariate columns that demean to exactly zero (time-invariant) are left out
    /// of the solve but still count in K.
    let columns: Int
    let regressors: [Double]
    let hat: [Double]
    let bread: [Double]
    /// rank of the dummy-variable design = participants + rank(W½X̃) (numpy matrix_rank rule).
    let rank: Int
    /// K = participant levels + 2 + covariate columns: statsmodels counts every design column.
    let designColumns: Int
    /// G/(G−1)·(N−1)/(N−K).
    let crv1: Double
    /// Σ_i P[DiD, i]·X̃[i, DiD]: 1 when the DiD coefficient is identified.
    let didHatDiagonal: Double

    static let timeColumn = 0
    static let didColumn = 1

    init(_ design: DiDDesign, rows subset: [Int], clusters: ClusterIndex) throws(DiDError) {
        let n = subset.count
        let cluster = clusters.ofRow
        let weight = design.weights.map { w in subset.map { w[$0] } } ?? [Double](repeating: 1, count: n)
        self.subset = subset
        rows = n
        self.cluster = cluster
        clusterCount = clusters.count
        self.weight = weight
        var clusterWeight = [Double](repeating: 0, count: clusters.count)
        var clusterSize = [Int](repeating: 0, count: clusters.count)
        var firstRow = [Int](repeating: -1, count: clusters.count)
        for i in 0..<n {
            clusterWeight[cluster[i]] += weight[i]
            clusterSize[cluster[i]] += 1
            if firstRow[cluster[i]] < 0 { firstRow[cluster[i]] = i }
        }
        self.clusterWeight = clusterWeight
        self.clusterSize = clusterSize

        // Raw regressor columns and K.
        var raw: [[Double]] = [subset.map { design.visit[$0] }, subset.map { design.visit[$0] * design.arm[$0] }]
        var designColumns: Int
        switch design.participantLevels {
        case .observed: designColumns = clusters.count + 2
        case .categories(let count): designColumns = count + 2
        }
        for covariate in design.covariates {
            switch covariate {
            case .numeric(let values):
                raw.append(subset.map { values[$0] })
                designColumns += 1
            case .categorical(let codes, let levels):
                let present = Set(subset.map { codes[$0] }).sorted()
                let reference: Int
                switch levels {
                case .observed:
                    reference = present[0]
                    designColumns += present.count - 1
                case .categories(let count):
                    reference = 0
                    designColumns += count - 1
                }
                for level in present where level != reference {
                    raw.append(subset.map { codes[$0] == level ? 1 : 0 })
                }
            }
        }
        self.designColumns = designColumns

        // Weighted within-participant demeaning; a column constant within every participant is set
        // to exact zeros (its weighted mean can differ from the value in the last bit).
        var demeaned: [[Double]] = []
        var nonzero: [Bool] = []
        for (index, column) in raw.enumerated() {
            let constant = (0..<n).allSatisfy { column[$0] == column[firstRow[cluster[$0]]] }
            if constant && index > Self.didColumn { continue }
            if constant {
                demeaned.append([Double](repeating: 0, count: n))
                nonzero.append(false)
                continue
            }
            var sums = [Double](repeating: 0, count: clusters.count)
            for i in 0..<n { sums[cluster[i]] += weight[i] * column[i] }
            demeaned.append((0..<n).map { column[$0] - sums[cluster[$0]] / clusterWeight[cluster[$0]] })
            nonzero.append(true)
        }
        let p = demeaned.count
        columns = p
        regressors = demeaned.flatMap { $0 }

        // pinv of W½X̃ over its nonzero columns (statsmodels pinv_extended: rcond 1e-15 · σmax).
        let active = (0..<p).filter { nonzero[$0] }
        var hat = [Double](repeating: 0, count: p * n)
        var bread = [Double](repeating: 0, count: p * p)
        var withinRank = 0
        if !active.isEmpty {
            let rootWeight = weight.map { $0.squareRoot() }
            var z = active.flatMap { k in (0..<n).map { demeaned[k][$0] * rootWeight[$0] } }
            let (u, s, vt) = try Self.svd(&z, rows: n, columns: active.count)
            let smax = s.max() ?? 0
            let cutoff = 1e-15 * smax
            let rankTolerance = smax * Double(min(n, designColumns)) * Double.ulpOfOne
            let m = s.count
            for r in 0..<m {
                if s[r] > rankTolerance { withinRank += 1 }
                guard s[r] > cutoff else { continue }
                let inverse = 1 / s[r]
                for (a, k) in active.enumerated() {
                    let vk = vt[r + a * m] * inverse
                    for i in 0..<n { hat[k + i * p] += vk * u[i + r * n] * rootWeight[i] }
                    for (b, l) in active.enumerated() { bread[k + l * p] += vk * vt[r + b * m] * inverse }
                }
            }
        }
        self.hat = hat
        self.bread = bread
        rank = clusters.count + withinRank
        let g = Double(clusters.count)
        crv1 = g / (g - 1) * ((Double(n) - 1) / Double(n - designColumns))
        let did = Self.didColumn
        didHatDiagonal = (0..<n).reduce(0) { $0 + hat[did + $1 * p] * demeaned[did][$1] }
    }

    /// Thin SVD of the column-major `rows × columns` matrix `a` (overwritten): U (rows × m),
    /// singular values (m, descending), Vᵀ (m × columns), m = min(rows, columns).
    private static func svd(_ a: inout [Double], rows: Int, columns: Int) throws(DiDError)
        -> (u: [Double], s: [Double], vt: [Double]) {
        var m = Int32(rows), n = Int32(columns)
        let k = min(rows, columns)
        var lda = m, ldu = m, ldvt = Int32(k)
        var s = [Double](repeating: 0, count: k)
        var u = [Double](repeating: 0, count: rows * k)
        var vt = [Double](repeating: 0, count: k * columns)
        var iwork = [Int32](repeating: 0, count: 8 * k)
        var info: Int32 = 0
        var query = 0.0
        var lwork: Int32 = -1
        dgesdd_("S", &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &query, &lwork, &iwork, &info)
        if info != 0 { throw .svdFailed(info: Int(info)) }
        lwork = Int32(query)
        var work = [Double](repeating: 0, count: Int(lwork))
        dgesdd_("S", &m, &n, &a, &lda, &s, &u, &ldu, &vt, &ldvt, &work, &lwork, &iwork, &info)
        if info != 0 { throw .svdFailed(info: Int(info)) }
        return (u, s, vt)
    }
}

/// What the wild cluster bootstrap of one row subset shares across features.
///
/// A refit on y_b = r + e_r∘s (signs s per participant) never needs a regression: with
/// ẽ = e + β̂·X̃[:, DiD] and A = per-participant sums of P[k, i]·ẽ_i (p × G),
/// β_b = β̂(1 − P X̃)_DiD,DiD + (A s)_DiD and the refit residuals are s∘ẽ − X̃(A s), so
/// - cluster:   se_b² = c·(Σ_g a_g² − 2 (V s)·(A s) + (A s)ᵀ LᵀL (A s)), with a = A[DiD, ·],
///   L_g = Σ_{i∈g} P[DiD, i] x̃_i and V = Lᵀ diag(a);
/// - nonrobust: se_b² = bread_DiD,DiD/(N − rank)·(Σ w ẽ² − 2 (V s)·(A s) + (A s)ᵀ X̃ᵀWX̃ (A s)),
///   with V[k, g] = Σ_{i∈g} w_i ẽ_i x̃_ik.
/// Stacking [A; V] of many features gives one dgemm with the G × B sign matrix.
struct BootstrapPlan {
    let draws: Int
    /// G × draws, column-major, ±1.
    let signs: [Double]
    /// L (G × p, column-major).
    let leverage: [Double]
    let clusterGram: [Double]
    let weightedGram: [Double]

    init(within: WithinDesign, signs: [Double], draws: Int) {
        let g = within.clusterCount, p = within.columns, n = within.rows
        self.draws = draws
        self.signs = signs
        var leverage = [Double](repeating: 0, count: g * p)
        var weightedGram = [Double](repeating: 0, count: p * p)
        for i in 0..<n {
            let c = within.cluster[i]
            let h = within.hat[WithinDesign.didColumn + i * p]
            for k in 0..<p {
                let x = within.regressors[i + k * n]
                leverage[c + k * g] += h * x
                for l in 0..<p { weightedGram[k + l * p] += within.weight[i] * x * within.regressors[i + l * n] }
            }
        }
        var clusterGram = [Double](repeating: 0, count: p * p)
        for k in 0..<p {
            for l in 0..<p {
                for c in 0..<g { clusterGram[k + l * p] += leverage[c + k * g] * leverage[c + l * g] }
            }
        }
        self.leverage = leverage
        self.clusterGram = clusterGram
        self.weightedGram = weightedGram
    }
}

/// Per-feature inputs of the bootstrap evaluation.
private struct BootstrapFeature {
    let feature: Int
    let beta: Double
    let se: Double
    /// β̂(1 − P X̃)_DiD,DiD: the part of β_b that does not depend on the signs (0 if identified).
    let offset: Double
    let constant: Double
    let factor: Double
    let cluster: Bool
}

/// Reusable buffers for solving up to `FixedEffectsDiD.blockSize` features of one row subset at a
/// time. Every BLAS call runs on a full block (unused columns zero): OpenBLAS's rounding depends on
/// the matrix widths, and a fixed width makes each feature's numbers independent of how many
/// features share its block, so results do not depend on how a run is sharded.
struct FeatureBlock {
    /// Relative slack under which |t_b| counts as a tie with |t_obs| (and so as "≥"). Some sign
    /// patterns reproduce |t_obs| exactly in exact arithmetic (all signs equal; without covariates
    /// also signs constant within each arm); any float computation lands those a few ulps either
    /// side, and statsmodels counts an arbitrary subset (REFERENCE-SEMANTICS §1.12). Genuine
    /// draws this close occur with probability ~1e-10 each.
    static let tieTolerance = 1e-10

    let within: WithinDesign
    private var outcomes: [Double]
    private var coefficients: [Double]

    static let width = FixedEffectsDiD.blockSize

    init(within: WithinDesign) {
        self.within = within
        outcomes = [Double](repeating: 0, count: within.rows * Self.width)
        coefficients = [Double](repeating: 0, count: within.columns * Self.width)
    }

    mutating func solve(_ features: ArraySlice<Int>, design: DiDDesign, outcomes source: [Double], standardize: Bool,
                        bootstrap: BootstrapPlan?, results: inout [DiDFeatureResult]) {
        let n = within.rows, p = within.columns, g = within.clusterCount
        let units = g
        var fitted: [Int] = []
        // Per fitted feature, the largest |y*|: the scale a standard error is judged against.
        var outcomeScale: [Double] = []
        var clusterSums = [Double](repeating: 0, count: g)

        // y* per feature (standardized over its rows), demeaned within participant.
        outcomes.withUnsafeMutableBufferPointer { ys in
            source.withUnsafeBufferPointer { y in
                for feature in features {
                    let out = ys.baseAddress! + fitted.count * n
                    let column = y.baseAddress! + feature * design.rowCount
                    var sum = 0.0
                    for i in 0..<n {
                        out[i] = column[within.subset[i]]
                        sum += out[i]
                    }
                    var center = 0.0, scale = 1.0
                    if standardize {
                        let mean = sum / Double(n)
                        var squares = 0.0
                        for i in 0..<n { squares += (out[i] - mean) * (out[i] - mean) }
                        let sd = (squares / Double(n - 1)).squareRoot()
                        if !sd.isFinite {
                            results[feature] = .nanRow(.nonFiniteStandardDeviation, units: units)
                            continue
                        }
                        if sd < 1e-8 {
                            results[feature] = .nanRow(.zeroVariance, units: units)
                            continue
                        }
                        center = mean
                        scale = sd
                    }
                    if n == within.designColumns {
                        results[feature] = .nanRow(.saturated, units: units)
                        continue
                    }
                    for c in 0..<g { clusterSums[c] = 0 }
                    var largest = 0.0
                    for i in 0..<n {
                        out[i] = (out[i] - center) / scale
                        largest = max(largest, abs(out[i]))
                        clusterSums[within.cluster[i]] += within.weight[i] * out[i]
                    }
                    outcomeScale.append(largest)
                    for i in 0..<n {
                        let c = within.cluster[i]
                        out[i] = within.clusterSize[c] == 1 ? 0 : out[i] - clusterSums[c] / within.clusterWeight[c]
                    }
                    fitted.append(feature)
                }
            }
        }
        let count = fitted.count
        guard count > 0 else { return }
        let width = Self.width
        for i in (count * n)..<(width * n) { outcomes[i] = 0 }

        // β = P Ỹ, then Ỹ ← Ỹ − X̃β (residuals), for the whole block at once.
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, Int32(p), Int32(width), Int32(n), 1,
                    within.hat, Int32(p), outcomes, Int32(n), 0, &coefficients, Int32(p))
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(width), Int32(p), -1,
                    within.regressors, Int32(n), coefficients, Int32(p), 1, &outcomes, Int32(n))

        let time = WithinDesign.timeColumn, did = WithinDesign.didColumn
        let residualDF = Double(n - within.rank)
        let stride = 2 * p
        let leading = stride * width
        var stacked = bootstrap == nil ? [] : [Double](repeating: 0, count: leading * g)
        var staged: [BootstrapFeature] = []
        var timeSums = [Double](repeating: 0, count: g), didSums = [Double](repeating: 0, count: g)
        for (slot, feature) in fitted.enumerated() {
            let e = slot * n
            var ssr = 0.0
            for c in 0..<g {
                timeSums[c] = 0
                didSums[c] = 0
            }
            for i in 0..<n {
                let residual = outcomes[e + i]
                ssr += within.weight[i] * residual * residual
                let c = within.cluster[i]
                timeSums[c] += within.hat[time + i * p] * residual
                didSums[c] += within.hat[did + i * p] * residual
            }
            let scale = ssr / residualDF
            let betaTime = coefficients[slot * p + time], betaDiD = coefficients[slot * p + did]
            // A standard error at roundoff level means the coefficient is fitted exactly (e.g. a
            // control arm whose median is 0 at both visits makes β_time 0). statsmodels gives NaN
            // when its standard error comes out exactly 0 (0/0) and a p-value from noise when it
            // is 1e-16-ish (golden zero_control_median); we give NaN for both: a standard error
            // below 1e-10 of the outcome's scale (largest |y*|; roundoff is ~1e-16 of it) is 0.
            let negligible = 1e-10 * outcomeScale[slot]
            func normalP(_ beta: Double, _ se: Double) -> Double { se <= negligible ? .nan : Normal.twoSidedP(beta / se) }
            var seTime = (within.crv1 * timeSums.reduce(0) { $0 + $1 * $1 }).squareRoot()
            var seDiD = (within.crv1 * didSums.reduce(0) { $0 + $1 * $1 }).squareRoot()
            var pTime = normalP(betaTime, seTime)
            var pDiD = normalP(betaDiD, seDiD)
            var covType = DiDCovarianceType.cluster
            if !seDiD.isFinite || !pDiD.isFinite {
                covType = .nonrobust
                seTime = (scale * within.bread[time + time * p]).squareRoot()
                seDiD = (scale * within.bread[did + did * p]).squareRoot()
                func twoSided(_ beta: Double, _ se: Double) -> Double {
                    se <= negligible ? .nan : 2 * StudentT.sf(abs(beta / se), degreesOfFreedom: residualDF)
                }
                pTime = twoSided(betaTime, seTime)
                pDiD = twoSided(betaDiD, seDiD)
            }
            results[feature] = DiDFeatureResult(
                betaDiD: betaDiD, seDiD: seDiD, pDiD: pDiD, betaTime: betaTime, pTime: pTime, nUnits: units,
                residSD: scale.squareRoot(), covType: covType, nanReason: nil, bootstrap: nil)

            guard let plan = bootstrap else { continue }
            guard seDiD.isFinite, seDiD > negligible else {
                results[feature].bootstrap = DiDBootstrapResult(pValue: .nan, standardError: .nan, ciLow: .nan,
                                                                ciHigh: .nan, validDraws: 0)
                results[feature].pDiD = .nan
                continue
            }
            // [A; V] of this feature into rows staged.count·2p ..< +2p of the stacked matrix.
            let row = staged.count * stride
            var constant = 0.0
            for i in 0..<n {
                let c = within.cluster[i]
                let restricted = outcomes[e + i] + betaDiD * within.regressors[i + did * n]
                let target = row + c * leading
                for k in 0..<p { stacked[target + k] += within.hat[k + i * p] * restricted }
                if covType == .nonrobust {
                    let weighted = within.weight[i] * restricted
                    constant += weighted * restricted
                    for k in 0..<p { stacked[target + p + k] += weighted * within.regressors[i + k * n] }
                }
            }
            if covType == .cluster {
                for c in 0..<g {
                    let a = stacked[row + did + c * leading]
                    constant += a * a
                    for k in 0..<p { stacked[row + p + k + c * leading] = plan.leverage[c + k * g] * a }
                }
            }
            staged.append(BootstrapFeature(
                feature: feature, beta: betaDiD, se: seDiD, offset: betaDiD * (1 - within.didHatDiagonal),
                constant: constant,
                factor: covType == .cluster ? within.crv1 : within.bread[did + did * p] / residualDF,
                cluster: covType == .cluster))
        }
        if let plan = bootstrap, !staged.isEmpty {
            evaluate(plan, staged: staged, stacked: stacked, leading: leading, results: &results)
        }
    }

    /// Runs all draws of the staged features: one dgemm gives, per feature, the 2p sign products
    /// (A s, V s) as columns over the draws; then t_b, the p-value, SE and CI per feature.
    private func evaluate(_ plan: BootstrapPlan, staged: [BootstrapFeature], stacked: [Double], leading: Int,
                          results: inout [DiDFeatureResult]) {
        let p = within.columns, g = within.clusterCount, draws = plan.draws
        let stride = 2 * p
        let m = stride * Self.width
        // products (draws × m) = signsᵀ · stackedᵀ: column slot·2p + k holds (A s_b)_k over b.
        var products = [Double](repeating: 0, count: m * draws)
        cblas_dgemm(CblasColMajor, CblasTrans, CblasTrans, Int32(draws), Int32(m), Int32(g), 1,
                    plan.signs, Int32(g), stacked, Int32(leading), 0, &products, Int32(draws))
        // numpy: alpha = 1 − 0.95; percentile q = 100·alpha/2 and 100·(1 − alpha/2), divided by 100.
        let alpha = 1.0 - 0.95
        let lowerQ = 100 * alpha / 2 / 100, upperQ = 100 * (1 - alpha / 2) / 100
        var quadratic = [Double](repeating: 0, count: draws)
        var validT: [Double] = [], validBeta: [Double] = []
        validT.reserveCapacity(draws)
        validBeta.reserveCapacity(draws)
        for (slot, feature) in staged.enumerated() {
            let gram = feature.cluster ? plan.clusterGram : plan.weightedGram
            let tieFloor = abs(feature.beta / feature.se) * (1 - FeatureBlock.tieTolerance)
            validT.removeAll(keepingCapacity: true)
            validBeta.removeAll(keepingCapacity: true)
            var exceed = 0
            products.withUnsafeBufferPointer { products in
                quadratic.withUnsafeMutableBufferPointer { quadratic in
                    // Q_b = constant + Σ_k (A s)_k · (Σ_l Γ_kl (A s)_l − 2 (V s)_k)
                    for b in 0..<draws { quadratic[b] = feature.constant }
                    let columns = products.baseAddress! + slot * stride * draws
                    for k in 0..<p {
                        let a = columns + k * draws, v = columns + (p + k) * draws
                        for b in 0..<draws {
                            var row = -2 * v[b]
                            for l in 0..<p { row += gram[k + l * p] * columns[l * draws + b] }
                            quadratic[b] += a[b] * row
                        }
                    }
                    let did = columns + WithinDesign.didColumn * draws
                    for b in 0..<draws {
                        let betaB = feature.offset + did[b]
                        let se = (feature.factor * quadratic[b]).squareRoot()
                        guard se.isFinite && se > 0 else { continue }
                        let tb = betaB / se
                        guard tb.isFinite else { continue }
                        validT.append(tb)
                        validBeta.append(betaB)
                        if abs(tb) >= tieFloor { exceed += 1 }
                    }
                }
            }
            var outcome = DiDBootstrapResult(pValue: .nan, standardError: .nan, ciLow: .nan, ciHigh: .nan,
                                             validDraws: validT.count)
            if !validT.isEmpty {
                outcome.pValue = Double(exceed + 1) / Double(validT.count + 1)
            }
            if validT.count >= 2 {
                let mean = validBeta.reduce(0, +) / Double(validBeta.count)
                let squares = validBeta.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
                outcome.standardError = (squares / Double(validBeta.count - 1)).squareRoot()
                outcome.ciLow = feature.beta - Percentile.linear(validT, upperQ) * feature.se
                outcome.ciHigh = feature.beta - Percentile.linear(validT, lowerQ) * feature.se
            }
            results[feature.feature].bootstrap = outcome
            results[feature.feature].pDiD = outcome.pValue
        }
    }
}
