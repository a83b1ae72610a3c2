"""GSEA benchmark: sctrial 1.0.0's run_gsea_did and gseapy 1.3.1's prerank against sctrial-plan, in one run.

Two comparisons, each tool in its own process; the parent measures wall time and takes each child's
peak RSS from os.wait4.

  end to end  sctrial `run_gsea_did(adata, gene_sets, design, visits, permutation_num=1000)` (did_table
              over every gene, sctrial's ranking, gseapy prerank; timed inside the child from
              read_h5ad on) against `sctrial-plan plan gsea FILE --gene-sets SETS` + `run` (the DiD
              prerequisite, the ranking, the permutations, the reduce; process wall times added).
  prerank     gseapy `prerank(rnk, gene_sets, permutation_num=1000, seed=123)` on a 20,000-gene
              ranking (gseapy runs 1 thread on a 2-core machine: its threads are capped at
              cpu_count - 1) against `sctrial-plan plan gsea --ranking FILE` + `run` with
              --threads 1 -j 1 (per core), and with both cores.

Cross-checks: prerank alone must agree exactly (ES, NES, NOM p, FDR q, FWER p, Lead_genes: the
engine reproduces gseapy's permutations); end to end, the tested terms must agree and ES within
1e-6 relative (sctrial averages float32 X in float32; ties in the ranking are ordered differently:
GSEA-SEMANTICS §5.2).

Data: the DiD benchmark's synthetic CSR float32 trial (bench/did_benchmark.py: 20,000 cells x 2,000
genes, 40 participants), 120 gene sets of 15-494 genes drawn from its var names with a fixed seed;
the prerank ranking is 20,000 genes with normal values (no ties) and 120 sets drawn from them.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from did_benchmark import DATA, gb, run_child, warm, write_file  # noqa: E402

SEED = 20_261_203


def trial_file(cells, genes, participants):
    path = os.path.join(DATA, f"gsea_trial_{cells}x{genes}.h5ad")
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        write_file(path, cells, genes, 0.10, participants)
    return path


def var_names(path):
    import h5py
    with h5py.File(path, "r") as f:
        index = f["var"].attrs["_index"]
        return [x.decode() if isinstance(x, bytes) else str(x) for x in f["var"][index][:]]


def write_sets(path, genes, count, rng):
    with open(path, "w") as out:
        for i in range(count):
            k = int(rng.integers(15, 495))
            members = rng.choice(genes, size=min(k, len(genes)), replace=False)
            out.write("\t".join([f"SET_{i:03d}", "na"] + list(members)) + "\n")


def run_ours(binary, args, run_dir, log, threads):
    shutil.rmtree(run_dir, ignore_errors=True)
    wp, rp, cp, up = run_child([binary, "plan", "gsea"] + args + ["--out", run_dir, "--threads", str(threads)], log)
    if cp != 0:
        raise SystemExit(f"ours: plan failed ({cp}); see {log}")
    wr, rr, cr, ur = run_child([binary, "run", run_dir, "-j", "1" if threads == 1 else "2"], log)
    if cr != 0:
        raise SystemExit(f"ours: run failed ({cr}); see {log}")
    return {"seconds": wp + wr, "plan_s": wp, "run_s": wr, "rss": max(rp, rr), "cpu": up + ur,
            "csv": os.path.join(run_dir, "results.csv")}


def run_python(python, mode, inputs, out_csv, info_json, log):
    cmd = [python, os.path.abspath(__file__), "--child", mode, "--child-inputs", json.dumps(inputs),
           "--child-out", out_csv, "--child-info", info_json]
    wall, rss, rc, cpu = run_child(cmd, log)
    if rc != 0:
        raise SystemExit(f"{mode} child failed ({rc}); see {log}")
    with open(info_json) as fh:
        info = json.load(fh)
    return {"wall": wall, "rss": rss, "cpu": cpu, "seconds": info["seconds"], "csv": out_csv}


def child(args):
    inputs = json.loads(args.child_inputs)
    t0 = time.perf_counter()
    import pandas as pd
    import gseapy as gp
    if args.child == "sctrial":
        import anndata as ad
        from sctrial.design import TrialDesign
        from sctrial.stats.gsea import run_gsea_did
        t0 = time.perf_counter()
        adata = ad.read_h5ad(inputs["h5ad"])
        res = run_gsea_did(adata, gene_sets=inputs["gmt"], design=TrialDesign(), visits=("pre", "post"),
                           permutation_num=inputs["permutations"])
    else:
        ranking = pd.read_csv(inputs["rnk"], sep="\t", header=None, names=["gene", "value"])
        t0 = time.perf_counter()
        res = gp.prerank(rnk=ranking, gene_sets=inputs["gmt"], permutation_num=inputs["permutations"], seed=123,
                         outdir=None, no_plot=True, threads=4).res2d
    seconds = time.perf_counter() - t0
    res.to_csv(args.child_out, index=False, float_format="%.17g")
    with open(args.child_info, "w") as fh:
        json.dump({"seconds": seconds}, fh)


def compare(ours_csv, theirs_csv, exact):
    import pandas as pd
    ours = pd.read_csv(ours_csv, float_precision="round_trip").set_index("Term")
    theirs = pd.read_csv(theirs_csv, float_precision="round_trip").set_index("Term")
    same_terms = set(ours.index) == set(theirs.index)
    theirs = theirs.loc[ours.index.intersection(theirs.index)]
    ours = ours.loc[theirs.index]
    worst = {c: float((abs(ours[c].astype(float) - theirs[c].astype(float)) / theirs[c].astype(float).abs().clip(lower=1e-300)).max())
             for c in ("ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val")}
    lead = bool((ours["Lead_genes"] == theirs["Lead_genes"]).all()) if exact else None
    return same_terms, len(theirs), worst, lead


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--prerank-genes", type=int, default=20_000)
    parser.add_argument("--sets", type=int, default=120)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--skip", action="append", default=[], choices=["sctrial", "gseapy"])
    parser.add_argument("--child", choices=["sctrial", "gseapy"])
    parser.add_argument("--child-inputs")
    parser.add_argument("--child-out")
    parser.add_argument("--child-info")
    args = parser.parse_args()
    if args.child:
        return child(args)
    rng = np.random.default_rng(SEED)
    work = os.path.join(DATA, "gsea-work")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "bench.log")
    h5ad = trial_file(args.cells, args.genes, args.participants)
    trial_gmt = os.path.join(work, "trial_sets.gmt")
    write_sets(trial_gmt, var_names(h5ad), args.sets, rng)
    prerank_genes = [f"G{i:05d}" for i in range(args.prerank_genes)]
    rnk = os.path.join(work, f"ranking_{args.prerank_genes}.rnk")
    values = np.sort(rng.normal(0.0, 1.0, args.prerank_genes))[::-1]
    with open(rnk, "w") as out:
        out.writelines(f"{g}\t{v!r}\n" for g, v in zip(prerank_genes, values))
    prerank_gmt = os.path.join(work, "prerank_sets.gmt")
    write_sets(prerank_gmt, prerank_genes, args.sets, rng)
    warm(h5ad)
    rows = []

    ours = run_ours(args.binary, [h5ad, "--visits", "pre,post", "--gene-sets", trial_gmt, "--permutations", str(args.permutations)],
                    os.path.join(work, "ours-e2e"), log, threads=2)
    line = {"what": f"end to end: {args.cells:,} cells x {args.genes:,} genes, {args.sets} sets, {args.permutations} permutations",
            "ours": ours}
    if "sctrial" not in args.skip:
        line["theirs"] = run_python(args.python, "sctrial", {"h5ad": h5ad, "gmt": trial_gmt, "permutations": args.permutations},
                                    os.path.join(work, "sctrial.csv"), os.path.join(work, "sctrial.json"), log)
        line["check"] = compare(ours["csv"], line["theirs"]["csv"], exact=False)
    rows.append(line)
    for threads in (1, 2):
        ours = run_ours(args.binary, ["--ranking", rnk, "--gene-sets", prerank_gmt, "--permutations", str(args.permutations)],
                        os.path.join(work, f"ours-prerank-{threads}"), log, threads=threads)
        line = {"what": f"prerank alone: {args.prerank_genes:,} genes, {args.sets} sets, ours on {threads} thread(s)", "ours": ours}
        if "gseapy" not in args.skip and threads == 1:
            line["theirs"] = run_python(args.python, "gseapy", {"rnk": rnk, "gmt": prerank_gmt, "permutations": args.permutations},
                                        os.path.join(work, "gseapy.csv"), os.path.join(work, "gseapy.json"), log)
            line["check"] = compare(ours["csv"], line["theirs"]["csv"], exact=True)
        rows.append(line)
    print("\n| comparison | ours (plan + run) | reference | ratio | peak RSS ours / reference |")
    print("| --- | --- | --- | --- | --- |")
    for line in rows:
        o, t = line["ours"], line.get("theirs")
        ours_text = f"{o['seconds']:.2f} s ({o['plan_s']:.2f} + {o['run_s']:.2f})"
        if t:
            print(f"| {line['what']} | {ours_text} | {t['seconds']:.2f} s (process {t['wall']:.2f} s) | "
                  f"{t['seconds'] / o['seconds']:.1f}x | {gb(o['rss'])} / {gb(t['rss'])} |")
        else:
            print(f"| {line['what']} | {ours_text} | | | {gb(o['rss'])} |")
    for line in rows:
        if "check" in line:
            same, n, worst, lead = line["check"]
            print(f"check {line['what']}: same terms {same}, {n} compared, worst relative "
                  + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) + (f", Lead_genes identical {lead}" if lead is not None else ""))


if __name__ == "__main__":
    main()
