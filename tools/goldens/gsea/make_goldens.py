"""GSEA preranked goldens from the REAL gseapy (GSEA-SEMANTICS §6 tier A).

Usage: make_goldens.py OUTDIR [--only-rand08]

Writes OUTDIR/inputs.json (rankings and gene sets, shared by the cases) and one OUTDIR/<case>.json
per case with gseapy's res2d rows. Run under gseapy 1.3.1 (rand 0.9 draws) for the main cases and
under gseapy 1.1.4 with --only-rand08 for the rand 0.8.5 case; regenerate.sh does both.

Rankings have no exact ties (strictly decreasing values), so gseapy's order is unambiguous and equal
to the order of the stored list. Floats are stored as repr strings (round-trip exact, and "nan"
survives), parsed with Swift's correctly rounded Double(String).
"""
import json
import os
import sys

import numpy as np
import pandas as pd
import gseapy
from gseapy import gse


def fl(x):
    return repr(float(x))


def make_ranking(n, seed, mixed_case=False):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.5, size=n)
    values[n // 3] = 0.0  # one exact zero (|0|^0 = 1 and |0|^1 = 0), still no tie
    values = np.sort(values)[::-1]
    assert len(np.unique(values)) == n
    names = [f"AB{i:04d}" for i in range(n)]
    perm = rng.permutation(n)  # names are not in rank order
    names = [names[i] for i in perm]
    if mixed_case:
        # mouse-style symbols: fewer than 90 % upper case
        names = [nm[0] + nm[1:].lower() if i % 3 else nm for i, nm in enumerate(names)]
    return names, [float(v) for v in values]


def make_sets(names, seed, count, prefix_every=0):
    """Synthetic sets of 15-300 genes: some enriched near the top or bottom, some random, a few
    too small or too large for the size filter, with duplicates and genes absent from the ranking."""
    rng = np.random.default_rng(seed)
    n = len(names)
    upper = [nm.upper() for nm in names]
    sets = {}
    for t in range(count):
        kind = t % 5
        size = int(rng.integers(15, 301))
        if t % 9 == 4:
            size = int(rng.integers(5, 14))  # filtered out: too small
        if kind == 0:  # top-enriched
            pool = np.arange(0, n)
            p = np.exp(-pool / (n / 2.0))
        elif kind == 1:  # bottom-enriched
            pool = np.arange(0, n)
            p = np.exp(-(n - 1 - pool) / (n / 2.0))
        elif kind == 2:  # both ends
            pool = np.arange(0, n)
            p = np.exp(-np.minimum(pool, n - 1 - pool) / (n / 4.0))
        else:  # random
            pool = np.arange(0, n)
            p = np.ones(n)
        size = min(size, n - 1)
        idx = rng.choice(pool, size=size, replace=False, p=p / p.sum())
        genes = [upper[i] for i in idx]
        genes += genes[:3]  # duplicates: gseapy takes the set of genes
        genes += [f"NO{t}X{j}" for j in range(4)]  # not in the ranking
        term = f"SET_{t:02d}_k{size}"
        if prefix_every and t % prefix_every == 0:
            term = "LIB__" + term
        elif prefix_every and t % prefix_every == 1:
            term = "OTHER__" + term
        sets[term] = genes
    return sets


INPUTS = {
    "n500": dict(n=500, seed=11, sets=20, set_seed=12, prefix_every=0),
    "n2000": dict(n=2000, seed=21, sets=40, set_seed=22, prefix_every=3),
    "n500mixed": dict(n=500, seed=31, sets=12, set_seed=32, prefix_every=0, mixed_case=True),
}

# Every permutation_num in {10, 100, 1000}, seed in {123, 0, 42}, weight in {0, 1, 2} appears.
CASES = [
    dict(name="n500_w1_s123_p10", input="n500", weight=1.0, seed=123, nperm=10, min_size=15, max_size=200, raw=True),
    dict(name="n500_w0_s0_p100", input="n500", weight=0.0, seed=0, nperm=100, min_size=15, max_size=200, raw=True),
    dict(name="n500_w1.5_s42_p1000", input="n500", weight=1.5, seed=42, nperm=1000, min_size=15, max_size=200),
    dict(name="n2000_w1_s42_p1000", input="n2000", weight=1.0, seed=42, nperm=1000, min_size=15, max_size=250),
    dict(name="n2000_w2_s123_p100", input="n2000", weight=2.0, seed=123, nperm=100, min_size=15, max_size=250),
    dict(name="n2000_w0_s0_p10", input="n2000", weight=0.0, seed=0, nperm=10, min_size=20, max_size=150),
    dict(name="n500mixed_w1_s123_p100", input="n500mixed", weight=1.0, seed=123, nperm=100, min_size=15, max_size=200),
]
CASES_RAND08 = [
    dict(name="rand08_n500_w1_s123_p100", input="n500", weight=1.0, seed=123, nperm=100, min_size=15, max_size=200,
         raw=True),
    # Term prefixes: gseapy 1.1.x pools FDR/FWER over all sets, not per prefix.
    dict(name="rand08_n2000_w1_s0_p100", input="n2000", weight=1.0, seed=0, nperm=100, min_size=15, max_size=250),
]


def run_case(case, inputs):
    inp = inputs[case["input"]]
    names, values, sets = inp["genes"], [float(v) for v in inp["ranking"]], inp["gene_sets"]
    rnk = pd.DataFrame({"feature": names, "rank": values})
    pre = gseapy.prerank(rnk=rnk, gene_sets=sets, permutation_num=case["nperm"], weight=case["weight"],
                         seed=case["seed"], min_size=case["min_size"], max_size=case["max_size"],
                         threads=1, outdir=None, no_plot=True, verbose=False)
    assert list(pre.ranking.index) == names, "gseapy reordered a tie-free ranking"
    rows = []
    for _, r in pre.res2d.iterrows():
        rows.append({
            "term": r["Term"], "es": fl(r["ES"]), "nes": fl(r["NES"]), "nom_p": fl(r["NOM p-val"]),
            "fdr": fl(r["FDR q-val"]), "fwer": fl(r["FWER p-val"]), "tag": r["Tag %"], "gene": r["Gene %"],
            "lead_genes": r["Lead_genes"],
        })
    out = dict(case)
    out["gseapy"] = gseapy.__version__
    out["weight"] = fl(case["weight"])
    out["rows"] = rows
    if case.get("raw"):
        # The raw null ES from the Rust core, same arguments (prerank upper-cases nothing here).
        res = gse.prerank_rs(names, values, sets, case["weight"], case["min_size"], case["max_size"],
                             case["nperm"], 1, case["seed"])
        # Sorted by term: gseapy 1.1.x returns the summaries in hash-map order, which varies by run.
        summaries = sorted(res.summaries, key=lambda s: s.term)
        out["null"] = {s.term: [fl(x) for x in s.esnull] for s in summaries}
        out["null_es"] = {s.term: fl(s.es) for s in summaries}
    return out


def main():
    outdir = sys.argv[1]
    only08 = "--only-rand08" in sys.argv
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "inputs.json")
    if only08:
        with open(path) as f:
            inputs = json.load(f)
    else:
        inputs = {}
        for key, spec in INPUTS.items():
            names, values = make_ranking(spec["n"], spec["seed"], spec.get("mixed_case", False))
            sets = make_sets(names, spec["set_seed"], spec["sets"], spec["prefix_every"])
            inputs[key] = {"genes": names, "ranking": [fl(v) for v in values], "gene_sets": sets}
        with open(path, "w") as f:
            json.dump(inputs, f, separators=(",", ":"))
    for case in (CASES_RAND08 if only08 else CASES):
        out = run_case(case, inputs)
        out["rng"] = "rand08" if only08 else "rand09"
        with open(os.path.join(outdir, case["name"] + ".json"), "w") as f:
            json.dump(out, f, indent=0, separators=(",", ":"))
        print(case["name"], len(out["rows"]), "rows")


if __name__ == "__main__":
    main()
