import Foundation
import Stats
import Testing

/// Goldens written by tools/goldens/stats_did/make_goldens.py from sctrial 1.0.0's own `did_fit`
/// (statsmodels 0.15.0 WLS/OLS, patsy formula, pinv, cluster / nonrobust), numpy 2.4.6 signs and
/// percentiles. JSON has no NaN: null stands for NaN (or, in `expected`, a key did_fit omitted).
struct StatsDiDGoldens: Decodable {
    struct Covariate: Decodable {
        let kind: String
        let values: [Double?]?
        let codes: [Int]?
        let levels: Int?
    }
    struct Bootstrap: Decodable {
        let draws: Int
        let seed: UInt64
    }
    struct Expected: Decodable {
        let beta_DiD, se_DiD, p_DiD, beta_time, p_time, resid_sd: Double?
        let p_DiD_boot, se_DiD_boot, ci_lo_boot, ci_hi_boot: Double?
        let n_units: Int?
        let cov_type_used, reason: String?
        /// Small G only: some draws tie |t_obs| exactly and did_fit counts an arbitrary subset of
        /// them (last-bit rounding); this is its p with every tie counted, as we count them.
        let p_boot_all_ties: Double?
    }
    struct DiDCase: Decodable {
        let name: String
        let participant: [Int]
        let participantLevels: Int?
        let visit, arm: [Double]
        let weights: [Double]?
        let covariates: [Covariate]
        let standardize: Bool
        let rows, features: Int
        let outcomes: [Double?]
        let bootstrap: Bootstrap?
        let expected: [Expected]
    }
    struct SignCase: Decodable {
        let seed: UInt64
        let sizes: [Int]
        let signs: [[Int]]
        let raw64: [String]
    }
    struct PercentileCase: Decodable {
        let values: [Double]
        let q: [Double]
        let expected: [Double]
        let bootstrapBounds: [Double]
    }
    let did: [DiDCase]
    let signs: [SignCase]
    let percentiles: [PercentileCase]

    static let shared: StatsDiDGoldens = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Goldens/did_goldens.json")
        do {
            return try JSONDecoder().decode(StatsDiDGoldens.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load \(url.path): \(error); run tools/goldens/stats_did/regenerate.sh")
        }
    }()
}

@Suite struct FixedEffectsDiDTests {
    static func design(_ c: StatsDiDGoldens.DiDCase) throws -> DiDDesign {
        func levels(_ count: Int?) -> DiDDesign.Levels { count.map { .categories($0) } ?? .observed }
        let covariates: [DiDDesign.Covariate] = c.covariates.map { spec in
            spec.kind == "numeric"
                ? .numeric(spec.values!.map { $0 ?? .nan })
                : .categorical(codes: spec.codes!, levels: levels(spec.levels))
        }
        return try DiDDesign(participant: c.participant, participantLevels: levels(c.participantLevels),
                             visit: c.visit, arm: c.arm, weights: c.weights, covariates: covariates)
    }

    static func fit(_ c: StatsDiDGoldens.DiDCase) throws -> [DiDFeatureResult] {
        let options = DiDOptions(standardize: c.standardize,
                                 bootstrap: c.bootstrap.map { DiDBootstrapOptions(draws: $0.draws, seed: $0.seed) })
        return try FixedEffectsDiD.fit(design(c), outcomes: c.outcomes.map { $0 ?? .nan }, featureCount: c.features,
                                       options: options)
    }

    /// Parity with did_fit to 1e-9 relative: both sides solve the same least-squares problem in
    /// float64 (statsmodels through the dummy-variable SVD, we through the within transformation),
    /// so only rounding differs, ~1e-13 on these conditioning levels (REFERENCE-SEMANTICS §1.8);
    /// 1e-9 leaves room for ill-conditioned cases without hiding a wrong formula (those are off
    /// by ≥ 1e-3). Bootstrap p-values are counts over identical signs: they must be equal.
    @Test func matchesSctrialDidFit() throws {
        var worst: [String: Double] = [:]
        for c in StatsDiDGoldens.shared.did {
            let results = try Self.fit(c)
            #expect(results.count == c.expected.count, "\(c.name)")
            for (index, (got, want)) in zip(results, c.expected).enumerated() {
                let label = "\(c.name) feature \(index)"
                #expect(got.nanReason?.rawValue == want.reason, "\(label)")
                #expect(got.covType?.rawValue == want.cov_type_used, "\(label)")
                if let units = want.n_units { #expect(got.nUnits == units, "\(label)") }
                func check(_ field: String, _ value: Double, _ reference: Double?) {
                    guard let reference else {
                        #expect(value.isNaN, "\(label) \(field): \(value), reference NaN")
                        return
                    }
                    let error = value == reference ? 0 : abs(value - reference) / abs(reference)
                    worst[field] = max(worst[field] ?? 0, error)
                    #expect(error <= 1e-9, "\(label) \(field): \(value) vs \(reference)")
                }
                check("beta_DiD", got.betaDiD, want.beta_DiD)
                check("se_DiD", got.seDiD, want.se_DiD)
                check("beta_time", got.betaTime, want.beta_time)
                check("p_time", got.pTime, want.p_time)
                check("resid_sd", got.residSD, want.resid_sd)
                if c.bootstrap != nil && want.reason == nil {
                    let boot = try #require(got.bootstrap, "\(label)")
                    #expect(got.pDiD == boot.pValue, "\(label) p_DiD")
                    let reference = want.p_boot_all_ties ?? want.p_DiD_boot
                    #expect(boot.pValue == reference, "\(label) p_boot \(boot.pValue) vs \(reference ?? .nan)")
                    check("se_DiD_boot", boot.standardError, want.se_DiD_boot)
                    check("ci_lo_boot", boot.ciLow, want.ci_lo_boot)
                    check("ci_hi_boot", boot.ciHigh, want.ci_hi_boot)
                } else {
                    #expect(got.bootstrap == nil, "\(label)")
                    check("p_DiD", got.pDiD, want.p_DiD)
                }
            }
        }
        print("max relative error vs sctrial did_fit:",
              worst.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
    }

    /// Each feature solved alone must give what the batched solve gives: exercises the dgemm blocks
    /// (more than 256 features), feature groups with their own NaN rows, and the bootstrap stacking.
    @Test func batchedEqualsOneByOne() throws {
        var rng = NumpyRandom(seed: 99)
        func uniform() -> Double { Double(rng.nextUInt64() >> 11) / Double(1 << 53) }
        let participants = 30, features = 600
        var participant: [Int] = [], visit: [Double] = [], arm: [Double] = [], weights: [Double] = []
        for p in 0..<participants {
            for v in 0..<2 {
                participant.append(p)
                visit.append(Double(v))
                arm.append(Double(p % 2))
                weights.append(Double(5 + Int(uniform() * 100)))
            }
        }
        let n = participant.count
        var outcomes = (0..<(n * features)).map { _ in uniform() * 4 - 2 }
        for f in stride(from: 0, to: features, by: 7) { outcomes[f * n + (f % n)] = .nan }
        for f in stride(from: 3, to: features, by: 11) { outcomes[f * n + 5] = .nan }
        let design = try DiDDesign(participant: participant, participantLevels: .categories(32), visit: visit,
                                   arm: arm, weights: weights)
        let options = DiDOptions(bootstrap: DiDBootstrapOptions(draws: 99, seed: 3))
        let batched = try FixedEffectsDiD.fit(design, outcomes: outcomes, featureCount: features, options: options)
        for f in stride(from: 0, to: features, by: 37) {
            let single = try FixedEffectsDiD.fit(design, outcomes: Array(outcomes[(f * n)..<((f + 1) * n)]),
                                                 featureCount: 1, options: options)[0]
            let got = batched[f]
            #expect(abs(got.betaDiD - single.betaDiD) <= 1e-12 * abs(single.betaDiD), "feature \(f)")
            #expect(abs(got.seDiD - single.seDiD) <= 1e-12 * single.seDiD, "feature \(f)")
            #expect(got.pDiD == single.pDiD, "feature \(f)")
            #expect(got.nUnits == single.nUnits && got.covType == single.covType, "feature \(f)")
            #expect(abs(got.bootstrap!.ciLow - single.bootstrap!.ciLow) <= 1e-12 * abs(single.bootstrap!.ciLow))
        }
        #expect(batched.allSatisfy { $0.covType == .cluster })
    }

    @Test func nanRowsAndErrors() throws {
        let participant = Array(0..<6).flatMap { [$0, $0] }
        let visit = (0..<12).map { Double($0 % 2) }
        let arm = participant.map { Double($0 % 2) }
        let design = try DiDDesign(participant: participant, participantLevels: .observed, visit: visit, arm: arm)
        var infinite = (0..<12).map { Double($0 * $0 % 7) }
        infinite[4] = .infinity
        let results = try FixedEffectsDiD.fit(design, outcomes: infinite, featureCount: 1)
        #expect(results[0].nanReason == .nonFiniteStandardDeviation && results[0].nUnits == 6)

        #expect(throws: DiDError.lengthMismatch(field: "visit", expected: 12, actual: 11)) {
            try DiDDesign(participant: participant, participantLevels: .observed, visit: Array(visit.dropLast()),
                          arm: arm)
        }
        #expect(throws: DiDError.levelOutOfRange(field: "participant", row: 10, code: 5, levels: 5)) {
            try DiDDesign(participant: participant, participantLevels: .categories(5), visit: visit, arm: arm)
        }
        #expect(throws: DiDError.invalidWeight(row: 2, value: 0)) {
            try DiDDesign(participant: participant, participantLevels: .observed, visit: visit, arm: arm,
                          weights: [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        }
        #expect(throws: DiDError.outcomeCount(expected: 24, actual: 12)) {
            try FixedEffectsDiD.fit(design, outcomes: infinite, featureCount: 2)
        }
        #expect(throws: DiDError.invalidDrawCount(0)) {
            try FixedEffectsDiD.fit(design, outcomes: infinite, featureCount: 1,
                                    options: DiDOptions(bootstrap: DiDBootstrapOptions(draws: 0)))
        }
    }
}
