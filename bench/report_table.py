"""Writes a K562-scale DE results.csv (pdex's columns, 2,000 targets x 8,000 genes = 16M rows) for
timing `sctrial-plan report`, without running the DE itself: the report only reads the table.

Numbers look like a Wilcoxon screen: per-gene lognormal reference means; per target, null genes
with uniform p-values and small fold-change noise, its own gene knocked down to 10% and 10 random
genes shifted by a fold in [0.5, 2] with small p-values; genes absent in the target (fold change
0). FDR is BH over the whole table, as pdex computes it. Fixed seed; ~2.3 GB.

    python3 bench/report_table.py RUN/results.csv [--targets 2000] [--genes 8000]
"""
import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=8000)
    args = parser.parse_args()
    rng = np.random.default_rng(20_261_203)
    genes = [f"GENE{g:05d}" for g in range(args.genes)]
    targets = [genes[g] for g in rng.choice(args.genes, args.targets, replace=False)]
    reference_mean = rng.lognormal(-1.0, 1.5, args.genes)
    n = args.targets * args.genes
    p = rng.uniform(size=n)
    fold = np.exp(rng.normal(0.0, 0.08, n))
    for t in range(args.targets):
        base = t * args.genes
        hit = rng.choice(args.genes, 11, replace=False)
        fold[base + hit[0]] = 0.1
        fold[base + hit[1:]] = rng.uniform(0.5, 2.0, 10)
        p[base + hit] = 10.0 ** -rng.uniform(3, 40, 11)
        absent = rng.choice(args.genes, 3, replace=False)
        fold[base + absent] = 0.0
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    fdr = np.empty(n)
    fdr[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    statistic = np.round(rng.uniform(1e5, 4e5, n) * 2) / 2
    with open(args.out, "w") as out:
        out.write("target,reference,feature,target_mean,reference_mean,percent_change,fold_change,p_value,statistic,fdr\n")
        for t, target in enumerate(targets):
            s = slice(t * args.genes, (t + 1) * args.genes)
            tm = reference_mean * fold[s]
            columns = [tm, reference_mean, fold[s] - 1.0, fold[s], p[s], statistic[s], fdr[s]]
            text = [list(map(repr, c.tolist())) for c in columns]
            lines = [f"{target},non-targeting,{g},{a},{b},{c},{d},{e},{f},{h}"
                     for g, a, b, c, d, e, f, h in zip(genes, *text)]
            out.write("\n".join(lines))
            out.write("\n")


if __name__ == "__main__":
    main()
