extension GSEA {
    /// The output rows of one prerank from the null every shard computed, pooled in permutation
    /// order (perm_1 … perm_nperm): what `prerank` does after drawing the null itself.
    public static func results(sets: [GSEAGeneSet], weights: [Double], null: GSEANullScores,
                               pooling: GSEAPooling) -> [GSEAResult] {
        let observed = sets.map { enrichmentScore(weights: weights, hits: $0.hits) }
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
}
