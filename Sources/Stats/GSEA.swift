import Foundation

// GSEA preranked (gseapy `prerank`, method "permutation"), bit-exact with gseapy's Rust core
// (GSEA-SEMANTICS §2–§4). Pure functions over arrays: the caller supplies the ranking already in
// gseapy's final descending order and the gene sets as hit positions in it.
//
// Exactness rests on three things: the same permutations (GSEARandom.swift), the same
// floating-point operation order in the walk, the running sum and the means (no FMA, no SIMD
// reductions, no reassociation: plain sequential Double arithmetic, which Swift never contracts),
// and the same counting rules for p, FDR and FWER.

/// A gene set as the engine sees it: its term and the sorted, distinct positions of its genes in the
/// ranking (0 = top). Build it with `GSEA.filterGeneSets` to get gseapy's filtering.
public struct GSEAGeneSet: Sendable, Hashable {
    public let term: String
    public let hits: [Int32]

    public init(term: String, hits: [Int32]) {
        precondition(zip(hits, hits.dropFirst()).allSatisfy { $0 < $1 }, "hits of \(term) must be strictly ascending")
        self.term = term
        self.hits = hits
    }
}

/// How FDR q and FWER p pool the gene sets.
public enum GSEAPooling: Sendable, Hashable {
    /// gseapy ≥ 1.3: one pool per "library", the term prefix before the first `"__"` (`""` when the
    /// term has none, so a plain dict of sets is a single pool).
    case termPrefix
    /// gseapy 1.1.x: every tested set in one pool.
    case all
}

/// Null ES values of every gene set for a contiguous block of permutations, as one shard computes
/// them. Permutation numbers follow gseapy: perm_0 is the identity (the observed ES), the null is
/// perm_1 … perm_nperm. Stored permutation-major because that is the order they are produced in
/// and because blocks then concatenate by appending.
public struct GSEANullScores: Sendable, Equatable {
    public let setCount: Int
    /// Permutation numbers covered, a sub-range of 1...nperm.
    public let permutations: Range<Int>
    /// `values[(j - permutations.lowerBound) * setCount + s]` = null ES of set s under perm_j.
    public let values: [Double]

    public init(setCount: Int, permutations: Range<Int>, values: [Double]) {
        precondition(permutations.lowerBound >= 1, "permutation 0 is the identity, not a null draw")
        precondition(values.count == setCount * permutations.count)
        self.setCount = setCount
        self.permutations = permutations
        self.values = values
    }

    public func score(set s: Int, permutation j: Int) -> Double {
        values[(j - permutations.lowerBound) * setCount + s]
    }

    /// The null ES of one set in permutation order (gseapy's `esnull`).
    public func scores(forSet s: Int) -> [Double] {
        (0..<permutations.count).map { values[$0 * setCount + s] }
    }

    /// Adjacent blocks [a, b) + [b, c) + … in order, as shards hand them back; nil if they do not
    /// tile one range or disagree on the set count.
    public static func concatenating(_ blocks: [GSEANullScores]) -> GSEANullScores? {
        guard let first = blocks.first else { return nil }
        var upper = first.permutations.lowerBound
        var values: [Double] = []
        for block in blocks {
            guard block.setCount == first.setCount, block.permutations.lowerBound == upper else { return nil }
            upper = block.permutations.upperBound
            values += block.values
        }
        return GSEANullScores(setCount: first.setCount, permutations: first.permutations.lowerBound..<upper,
                              values: values)
    }
}

/// The leading edge of one set, gseapy's `Tag %`, `Gene %` and `Lead_genes` (GSEA-SEMANTICS §2.4).
public struct GSEALeadingEdge: Sendable, Hashable {
    /// Index of the extreme of the running sum RES (first argmax for ES ≥ 0, first argmin otherwise).
    public let extremeIndex: Int
    /// Leading-edge positions in gseapy's order: top-down for ES ≥ 0, bottom-up for ES < 0.
    public let positions: [Int32]
    /// `"k_lead/k"`, k the number of hits.
    public let tagPercent: String
    /// Fraction of the ranking up to the extreme, formatted like Python's `"{0:.2%}"`.
    public let genePercent: String
}

/// Nominal p, NES, FDR q and FWER p of one set.
public struct GSEASetStatistics: Sendable, Hashable {
    public let es: Double
    public let nes: Double
    public let nominalP: Double
    public let fdr: Double
    public let fwer: Double
}

/// One output row (gseapy's res2d without the constant `Name` column).
public struct GSEAResult: Sendable, Hashable {
    public let term: String
    public let es: Double
    public let nes: Double
    public let nominalP: Double
    public let fdr: Double
    public let fwer: Double
    public let tagPercent: String
    public let genePercent: String
    /// Leading-edge gene positions in the ranking, in gseapy's `Lead_genes` order.
    public let leadingEdge: [Int32]

    /// gseapy's `Lead_genes` string: the names at `leadingEdge` joined by ";".
    public func leadGenes(names: [String]) -> String {
        leadingEdge.map { names[Int($0)] }.joined(separator: ";")
    }
}

public enum GSEAError: Error, Equatable, CustomStringConvertible {
    case noPermutations
    case noGeneSetPassedFiltering

    public var description: String {
        switch self {
        case .noPermutations:
            return "permutation_num must be at least 1 (gseapy drops the p, q, FWER and leading-edge columns at 0)"
        case .noGeneSetPassedFiltering:
            return "No gene sets passed through filtering condition"
        }
    }
}

public enum GSEA {
    // MARK: Weights and the walk

    /// `w_i = |r_i|^p` with C `pow`, as Rust's `abs().powf(p)` (the same libm call): p = 0 gives 1 for
    /// every gene, including r = 0 (0^0 = 1). The sign of r only sets the order, never the walk.
    public static func weights(ranking: [Double], weight: Double) -> [Double] {
        ranking.map { Foundation.pow(Swift.abs($0), weight) }
    }

    /// The enrichment score of one set: gseapy's `fast_random_walk` (§3.3). The value of largest
    /// magnitude of the running sum, checked just before and just after each hit; strict `>` keeps
    /// the first extreme when a later one has the same magnitude. If every hit weight is 0 the
    /// result is NaN or ±inf, as in gseapy (nothing guards it there either).
    public static func enrichmentScore(weights: [Double], hits: [Int32]) -> Double {
        if hits.isEmpty { return 0 }  // the walk never moves (and an empty ranking has no base address)
        return weights.withUnsafeBufferPointer { w in
            hits.withUnsafeBufferPointer { h in walk(w.baseAddress!, count: w.count, hits: h) }
        }
    }

    /// The walk over sorted hit positions; `ns` is the sequential sum of the hit weights in
    /// ascending position, which equals gseapy's sum over all N of tag·w (the misses add exact
    /// +0.0), and each step keeps gseapy's expression shapes: `cur -= q1 * (pos - last - 1)`,
    /// `cur += q2 * w[pos]`.
    @inline(__always)
    static func walk(_ w: UnsafePointer<Double>, count n: Int, hits: UnsafeBufferPointer<Int32>) -> Double {
        var ns = 0.0
        for p in hits { ns += w[Int(p)] }
        let k = Double(hits.count)
        let q1 = 1.0 / (Double(n) - k)
        let q2 = 1.0 / ns
        var res = 0.0
        var cur = 0.0
        var last = -1.0
        for p in hits {
            let pos = Double(p)
            cur -= q1 * (pos - last - 1.0)
            if Swift.abs(cur) > Swift.abs(res) { res = cur }
            cur += q2 * w[Int(p)]
            if Swift.abs(cur) > Swift.abs(res) { res = cur }
            last = pos
        }
        return res
    }

    /// gseapy's `RES` (Rust `running_enrichment_score`, §3.3), a different routine from the walk:
    /// the cumulative sum of `tag·w·norm_tag − (1−tag)·norm_notag` with `norm_tag = 1/Σ tag·w` and
    /// `norm_notag = 1/(N−k)`. Only used to place the leading edge, whose argmax/argmin must see the
    /// same values as gseapy's.
    public static func runningEnrichmentScore(weights: [Double], hits: [Int32]) -> [Double] {
        let n = weights.count
        var isHit = [Bool](repeating: false, count: n)
        var sum = 0.0
        for p in hits {
            isHit[Int(p)] = true
            sum += weights[Int(p)]
        }
        let normTag = 1.0 / sum
        let normNoTag = 1.0 / Double(n - hits.count)
        var res = [Double](repeating: 0, count: n)
        var acc = 0.0
        for i in 0..<n {
            // Hit: (1·w)·norm_tag − 0·norm_notag = w·norm_tag; miss: 0·w·norm_tag − 1·norm_notag.
            acc += isHit[i] ? weights[i] * normTag : 0.0 - normNoTag
            res[i] = acc
        }
        return res
    }

    /// Leading edge, `Tag %` and `Gene %` (§2.4). `es` is the walk's ES (its sign picks argmax or
    /// argmin of RES, numpy-style first index).
    public static func leadingEdge(weights: [Double], hits: [Int32], es: Double) -> GSEALeadingEdge {
        let res = runningEnrichmentScore(weights: weights, hits: hits)
        let n = weights.count
        var extreme = 0
        let positions: [Int32]
        let fraction: Double
        if es >= 0 {
            for i in 1..<max(n, 1) where res[i] > res[extreme] { extreme = i }
            positions = hits.filter { Int($0) <= extreme }
            fraction = Double(extreme + 1) / Double(n)
        } else {
            for i in 1..<max(n, 1) where res[i] < res[extreme] { extreme = i }
            positions = hits.filter { Int($0) >= extreme }.reversed()
            fraction = Double(n - extreme) / Double(n)
        }
        return GSEALeadingEdge(extremeIndex: extreme, positions: positions,
                               tagPercent: "\(positions.count)/\(hits.count)",
                               genePercent: pythonPercent2(fraction))
    }

    /// Python's `"{0:.2%}".format(x)`: CPython multiplies by 100 in binary floating point, then
    /// prints 2 decimals correctly rounded from the exact binary value (ties to even, which for a
    /// binary value can only happen when it is exactly representable, e.g. 0.125 → "0.12"). Done with
    /// integer arithmetic on the significand so it does not depend on the C library's printf.
    public static func pythonPercent2(_ x: Double) -> String {
        let v = x * 100.0
        guard v.isFinite else { return v.isNaN ? "nan%" : (v > 0 ? "inf%" : "-inf%") }
        let negative = v.sign == .minus
        let a = Swift.abs(v)
        // a = significand · 2^exponent exactly, significand < 2^53.
        // (Zero and subnormals: exponent −1074 and no implicit bit; `a.exponent` of 0 is Int.min.)
        let significand = a.significandBitPattern | (a.isNormal ? 1 << 52 : 0)
        let e = a.isNormal ? Int(a.exponent) - 52 : -1074
        var hundredths: UInt64
        if e >= 0 {
            // Integers ≥ 2^53: far outside any fraction·100 we print; keep it simple and exact enough.
            precondition(a < 1e15, "percent out of range")
            hundredths = UInt64(a) * 100
        } else if -e >= 64 {
            // Below 2^-11 · 2^53 … tiny values: 0.00 unless ≥ 0.005 (impossible here since a < 2^-11).
            hundredths = 0
        } else {
            // a·100 = significand·100 / 2^-e; significand·100 < 2^60 fits.
            let scaled = significand * 100
            let shift = UInt64(-e)
            var q = scaled >> shift
            let remainder = scaled & ((1 << shift) - 1)
            let half: UInt64 = 1 << (shift - 1)
            if remainder > half || (remainder == half && q & 1 == 1) { q += 1 }
            hundredths = q
        }
        let whole = hundredths / 100
        let cents = hundredths % 100
        return (negative ? "-" : "") + "\(whole)." + (cents < 10 ? "0" : "") + "\(cents)%"
    }

    // MARK: The null

    /// Null ES of every set for permutations `permutations` (a sub-range of 1...nperm), what one shard
    /// computes. Permutations are the outer loop, so memory is O(N + Σk + sets × block).
    ///
    /// For each permutation the null hit positions of a set are `{p : perm_j[p] ∈ H}` in ascending p.
    /// Instead of inverting the permutation and sorting `inv[H]` per set, one pass over the positions
    /// scatters p into every set that contains gene `perm_j[p]` (a gene → sets index built once), which
    /// yields each set's positions already sorted: O(N + Σk) per permutation and no sort. The walk then
    /// runs on exactly the sorted positions gseapy's tag vector marks, so values are identical.
    ///
    /// `threads` > 1 walks the sets of a batch of permutations concurrently; each (set, permutation)
    /// walk is independent and sequential, so the values do not depend on it.
    public static func nullScores(weights: [Double], sets: [[Int32]], seed: UInt64, version: GSEARandomVersion,
                                  permutations: Range<Int>, threads: Int = 1) -> GSEANullScores {
        precondition(permutations.lowerBound >= 1)
        let n = weights.count
        let setCount = sets.count
        // gene → sets (CSR), and each set's slot in the per-permutation position buffer.
        var memberStart = [Int](repeating: 0, count: n + 1)
        for hits in sets { for g in hits { memberStart[Int(g) + 1] += 1 } }
        for g in 0..<n { memberStart[g + 1] += memberStart[g] }
        var memberSets = [Int32](repeating: 0, count: memberStart[n])
        var fill = memberStart
        for (s, hits) in sets.enumerated() {
            for g in hits {
                memberSets[fill[Int(g)]] = Int32(s)
                fill[Int(g)] += 1
            }
        }
        var setStart = [Int](repeating: 0, count: setCount + 1)
        for s in 0..<setCount { setStart[s + 1] = setStart[s] + sets[s].count }
        let totalHits = setStart[setCount]

        var perms = GenePermutations(geneCount: n, seed: seed, version: version)
        perms.fastForward(to: permutations.lowerBound - 1)
        let batch = threads > 1 ? max(1, min(permutations.count, 16)) : 1
        var values = [Double](repeating: 0, count: setCount * permutations.count)
        var positions = [Int32](repeating: 0, count: totalHits * batch)
        var cursor = [Int](repeating: 0, count: setCount)

        weights.withUnsafeBufferPointer { wBuf in
            let w = wBuf.baseAddress ?? UnsafePointer(bitPattern: 8)!
            var j = permutations.lowerBound
            while j < permutations.upperBound {
                let inBatch = min(batch, permutations.upperBound - j)
                positions.withUnsafeMutableBufferPointer { pos in
                    for b in 0..<inBatch {
                        perms.advance()
                        let base = b * totalHits
                        for s in 0..<setCount { cursor[s] = base + setStart[s] }
                        perms.current.withUnsafeBufferPointer { perm in
                            memberSets.withUnsafeBufferPointer { members in
                                memberStart.withUnsafeBufferPointer { starts in
                                    for p in 0..<n {
                                        let g = Int(perm[p])
                                        var m = starts[g]
                                        let end = starts[g + 1]
                                        while m < end {
                                            let s = Int(members[m])
                                            pos[cursor[s]] = Int32(p)
                                            cursor[s] += 1
                                            m += 1
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                let firstRow = j - permutations.lowerBound
                positions.withUnsafeBufferPointer { pos in
                    values.withUnsafeMutableBufferPointer { out in
                        let outBase = out.baseAddress!
                        if batch == 1 {
                            for s in 0..<setCount {
                                let slice = UnsafeBufferPointer(rebasing: pos[setStart[s]..<setStart[s + 1]])
                                outBase[firstRow * setCount + s] = walk(w, count: n, hits: slice)
                            }
                        } else {
                            // Each task writes its own sets' cells; the buffers outlive the call.
                            nonisolated(unsafe) let out = UnsafeMutablePointer(mutating: outBase)
                            nonisolated(unsafe) let positionsBase = pos.baseAddress!
                            nonisolated(unsafe) let weightsBase = w
                            let starts = setStart
                            let chunks = threads
                            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                                var s = c * setCount / chunks
                                let sEnd = (c + 1) * setCount / chunks
                                while s < sEnd {
                                    for b in 0..<inBatch {
                                        let base = b * totalHits
                                        let slice = UnsafeBufferPointer(start: positionsBase + base + starts[s],
                                                                        count: starts[s + 1] - starts[s])
                                        out[(firstRow + b) * setCount + s] = walk(weightsBase, count: n, hits: slice)
                                    }
                                    s += 1
                                }
                            }
                        }
                    }
                }
                j += inBatch
            }
        }
        return GSEANullScores(setCount: setCount, permutations: permutations, values: values)
    }

    // MARK: Statistics

    /// The pool key of a term under gseapy ≥ 1.3: the prefix before the first `"__"`, `""` if none.
    public static func poolKey(_ term: String) -> String {
        guard let r = term.range(of: "__") else { return "" }
        return String(term[..<r.lowerBound])
    }

    /// NES, nominal p, FDR q and FWER p of every set (§3.4) from its observed ES and the complete null
    /// (perm_1 … perm_nperm, e.g. shard blocks joined by `GSEANullScores.concatenating`).
    ///
    /// - NES: positive and negative nulls normalised separately by their means (sequential sum /
    ///   count; an empty side uses the observed ES itself as the mean, as gseapy does). ES = 0 counts
    ///   as positive.
    /// - Nominal p: without +1, `#(null ≥ ES)/#(null ≥ 0)` (or ≤, < 0 for ES < 0); 1.0 if the
    ///   denominator is 0.
    /// - FDR q: within the pool, `phi_norm/phi_obs` over null NES and observed NES of the same sign,
    ///   1.0 if phi_obs is 0, clamped to [0, 1]; no monotone adjustment (gseapy does not call it).
    /// - FWER p: per permutation the largest non-negative and the smallest negative null NES of the
    ///   pool; NES ≥ 0 counts `max ≥ NES` over nperm, NES < 0 counts `min < NES` (strict) over the
    ///   permutations whose min is negative, the asymmetry of gseapy's code.
    public static func statistics(terms: [String], observed: [Double], null: GSEANullScores,
                                  pooling: GSEAPooling = .termPrefix) -> [GSEASetStatistics] {
        let setCount = terms.count
        precondition(observed.count == setCount && null.setCount == setCount)
        precondition(null.permutations.lowerBound == 1, "statistics need the whole null, perm_1 … perm_nperm")
        let nperm = null.permutations.count
        var nes = [Double](repeating: 0, count: setCount)
        var pval = [Double](repeating: 0, count: setCount)
        // nullNES[j * setCount + s], the same layout as the null ES.
        var nullNES = [Double](repeating: 0, count: setCount * nperm)
        for s in 0..<setCount {
            let es = observed[s]
            var posSum = 0.0, negSum = 0.0
            var posCount = 0, negCount = 0
            var atLeast = 0, atMost = 0
            for j in 0..<nperm {
                let x = null.values[j * setCount + s]
                if x >= 0 { posSum += x; posCount += 1 }
                if x < 0 { negSum += x; negCount += 1 }
                if x >= es { atLeast += 1 }
                if x <= es { atMost += 1 }
            }
            let posMean = posCount > 0 ? posSum / Double(posCount) : es
            let negMean = negCount > 0 ? negSum / Double(negCount) : es
            nes[s] = es >= 0 ? es / posMean : es / Swift.abs(negMean)
            for j in 0..<nperm {
                let x = null.values[j * setCount + s]
                nullNES[j * setCount + s] = x >= 0 ? x / posMean : x / Swift.abs(negMean)
            }
            if es < 0 {
                pval[s] = negCount == 0 ? 1.0 : Double(atMost) / Double(negCount)
            } else {
                pval[s] = posCount == 0 ? 1.0 : Double(atLeast) / Double(posCount)
            }
        }

        var fdr = [Double](repeating: 0, count: setCount)
        var fwer = [Double](repeating: 0, count: setCount)
        var pools: [String: [Int]] = [:]
        var poolOrder: [String] = []
        for (s, term) in terms.enumerated() {
            let key = pooling == .termPrefix ? poolKey(term) : ""
            if pools[key] == nil { poolOrder.append(key) }
            pools[key, default: []].append(s)
        }
        for key in poolOrder {
            let members = pools[key]!
            // Pooled null NES and observed NES, sorted, NaN dropped (NaN satisfies no comparison).
            var pooled: [Double] = []
            pooled.reserveCapacity(members.count * nperm)
            for j in 0..<nperm { for s in members { let x = nullNES[j * setCount + s]; if !x.isNaN { pooled.append(x) } } }
            pooled.sort()
            let obs = members.map { nes[$0] }.filter { !$0.isNaN }.sorted()
            var maxPos = [Double](repeating: 0, count: nperm)
            var minNeg = [Double](repeating: 0, count: nperm)
            for j in 0..<nperm {
                var hi = 0.0, lo = 0.0
                for s in members {
                    let x = nullNES[j * setCount + s]
                    if x >= 0 && x > hi { hi = x }
                    if x < 0 && x < lo { lo = x }
                }
                maxPos[j] = hi
                minNeg[j] = lo
            }
            maxPos.sort()
            minNeg.sort()
            let negativePerms = countBelow(minNeg, 0)
            for s in members {
                let t = nes[s]
                let phiNorm: Double, phiObs: Double
                if t >= 0 {
                    phiNorm = Double(countAtLeast(pooled, t)) / Double(countAtLeast(pooled, 0))
                    phiObs = Double(countAtLeast(obs, t)) / Double(countAtLeast(obs, 0))
                    fwer[s] = Double(countAtLeast(maxPos, t)) / Double(nperm)
                } else {
                    phiNorm = Double(countAtMost(pooled, t)) / Double(countBelow(pooled, 0))
                    phiObs = Double(countAtMost(obs, t)) / Double(countBelow(obs, 0))
                    fwer[s] = Double(countBelow(minNeg, t)) / Double(negativePerms)
                }
                if phiObs == 0 {
                    fdr[s] = 1.0
                } else {
                    let q = phiNorm / phiObs
                    fdr[s] = q.isNaN ? q : Swift.min(Swift.max(q, 0.0), 1.0)
                }
            }
        }
        return (0..<setCount).map {
            GSEASetStatistics(es: observed[$0], nes: nes[$0], nominalP: pval[$0], fdr: fdr[$0], fwer: fwer[$0])
        }
    }

    /// Counts over an ascending, NaN-free array; a NaN threshold matches nothing, as in gseapy.
    private static func firstIndex(_ a: [Double], where predicate: (Double) -> Bool) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if predicate(a[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
    static func countAtLeast(_ a: [Double], _ t: Double) -> Int {
        t.isNaN ? 0 : a.count - firstIndex(a) { $0 >= t }
    }
    static func countAtMost(_ a: [Double], _ t: Double) -> Int {
        t.isNaN ? 0 : firstIndex(a) { $0 > t }
    }
    static func countBelow(_ a: [Double], _ t: Double) -> Int {
        t.isNaN ? 0 : firstIndex(a) { $0 >= t }
    }

    // MARK: The whole analysis

    /// gseapy prerank end to end on a ranking in final order: observed ES, the null over all
    /// `permutationCount` permutations, statistics and leading edges, rows in output order
    /// (`sortedForOutput`). Throws for `permutationCount < 1` (gseapy's 0 drops the columns this
    /// row model has) and for an empty set list.
    public static func prerank(ranking: [Double], weight: Double, sets: [GSEAGeneSet], permutationCount: Int,
                               seed: UInt64, version: GSEARandomVersion = .rand09,
                               pooling: GSEAPooling = .termPrefix, threads: Int = 1) throws -> [GSEAResult] {
        guard permutationCount >= 1 else { throw GSEAError.noPermutations }
        guard !sets.isEmpty else { throw GSEAError.noGeneSetPassedFiltering }
        let w = weights(ranking: ranking, weight: weight)
        let observed = sets.map { enrichmentScore(weights: w, hits: $0.hits) }
        let null = nullScores(weights: w, sets: sets.map(\.hits), seed: seed, version: version,
                              permutations: 1..<(permutationCount + 1), threads: threads)
        return results(sets: sets, weights: w, observed: observed, null: null, pooling: pooling)
    }

    /// The rows from the pieces a sharded run has: the sets, the weights, their observed ES and the
    /// complete null joined from the shards' blocks. Statistics, leading edges and output order.
    public static func results(sets: [GSEAGeneSet], weights: [Double], observed: [Double], null: GSEANullScores,
                               pooling: GSEAPooling = .termPrefix) -> [GSEAResult] {
        let stats = statistics(terms: sets.map(\.term), observed: observed, null: null, pooling: pooling)
        let rows = sets.indices.map { s -> GSEAResult in
            let edge = leadingEdge(weights: weights, hits: sets[s].hits, es: observed[s])
            let st = stats[s]
            return GSEAResult(term: sets[s].term, es: st.es, nes: st.nes, nominalP: st.nominalP, fdr: st.fdr,
                              fwer: st.fwer, tagPercent: edge.tagPercent, genePercent: edge.genePercent,
                              leadingEdge: edge.positions)
        }
        return sortedForOutput(rows)
    }

    /// Output order: |NES| descending like gseapy's res2d. gseapy's own order among equal |NES| is
    /// an unstable quicksort (unspecified), so ours is fixed instead: equal |NES| by term in UTF-8 byte
    /// order, NaN NES last (also by term).
    public static func sortedForOutput(_ rows: [GSEAResult]) -> [GSEAResult] {
        rows.sorted { a, b in
            let x = Swift.abs(a.nes), y = Swift.abs(b.nes)
            if x.isNaN != y.isNaN { return y.isNaN }
            if !x.isNaN && x != y { return x > y }
            return a.term.utf8.lexicographicallyPrecedes(b.term.utf8)
        }
    }

    // MARK: Gene-set filtering

    /// Python's `str.isupper()`: at least one cased character and none lowercase or titlecase.
    static func pythonIsUpper(_ s: String) -> Bool {
        var cased = false
        for u in s.unicodeScalars {
            let p = u.properties
            if p.isLowercase || p.generalCategory == .titlecaseLetter { return false }
            if p.isUppercase { cased = true }
        }
        return cased
    }

    /// gseapy's `check_uppercase` decision (§2.2): match on upper-cased ranking names when fewer than
    /// 90 % of the ranking's names are upper case while each of the first (up to) 20 gene sets is at
    /// least 90 % upper case, e.g. mouse symbols against human-style libraries. Output strings keep
    /// the original names; only the matching changes.
    public static func shouldUppercase(geneNames: [String], sets: [(term: String, genes: [String])]) -> Bool {
        func upperFraction(_ names: [String]) -> Double {
            names.isEmpty ? 0 : Double(names.filter(pythonIsUpper).count) / Double(names.count)
        }
        guard upperFraction(geneNames) < 0.9 else { return false }
        let head = sets.prefix(20)
        return !head.isEmpty && head.allSatisfy { upperFraction($0.genes) >= 0.9 }
    }

    /// gseapy's set filtering (§2.2): distinct genes of each set, those present in the ranking, kept
    /// when `minSize ≤ k ≤ maxSize` and `k < N`; hits are their ranking positions, ascending. Sets
    /// keep the input order (gseapy walks them in term byte order, which changes no value). Gene names
    /// must be unique (gseapy's `make_unique` renames duplicates before this). With `caseMapping`
    /// the `shouldUppercase` rule decides whether ranking names are upper-cased for matching.
    public static func filterGeneSets(geneNames: [String], sets: [(term: String, genes: [String])],
                                      minSize: Int = 15, maxSize: Int = 500,
                                      caseMapping: Bool = true) -> [GSEAGeneSet] {
        let upper = caseMapping && shouldUppercase(geneNames: geneNames, sets: sets)
        var position: [String: Int32] = [:]
        position.reserveCapacity(geneNames.count)
        for (i, name) in geneNames.enumerated() {
            let key = upper ? name.uppercased() : name
            if position[key] == nil { position[key] = Int32(i) }
        }
        var out: [GSEAGeneSet] = []
        for (term, genes) in sets {
            let hits = Set(genes.compactMap { position[$0] }).sorted()
            if minSize <= hits.count && hits.count <= maxSize && hits.count < geneNames.count {
                out.append(GSEAGeneSet(term: term, hits: hits))
            }
        }
        return out
    }
}
