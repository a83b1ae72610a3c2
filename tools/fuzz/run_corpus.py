#!/usr/bin/env python3
"""Run every command on every file of a corpus (make_corpus.py) and record what happened.

Usage: python3 run_corpus.py --corpus DIR [--bin DIR] [--timeout S] [--jobs N]
                             [--sample N --seed S] [--max-seconds S] [--report FILE]

For each file: inspect, validate --all, plan did (--visits pre,post --shards 1) and its run,
plan de (--groupby-key target_gene --reference non-targeting --shards 1) and its run. Each run
records exit code, signal, seconds and the first stderr line in the report (JSON). Outcomes:

  crash         killed by a signal (named)
  hang          still running at --timeout (killed)
  exit0-corrupt exit 0 on a file the manifest marks corrupt, by a command in its must_fail
  false-error   non-zero exit on a file the manifest marks valid (base or benign mutation)
  silent-wrong  a run on a valid mutant whose results.csv differs from its base's
  unclean       non-zero exit without a one-line 'error:' message
  error         a clean error (non-zero, one 'error:' line)
  ok            exit 0 where that is right

Exit status 1 when any crash, hang, exit0-corrupt, false-error, silent-wrong or unclean
occurred, so a test can run a sample. Standard library only.
"""

import argparse
import concurrent.futures as futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BAD = ("crash", "hang", "exit0-corrupt", "false-error", "silent-wrong", "unclean")


def commands(binary, path, work):
    did, de = os.path.join(work, "did"), os.path.join(work, "de")
    return [
        ("inspect", [binary, "inspect", path], None),
        ("validate", [binary, "validate", "--all", path], None),
        ("plan-did", [binary, "plan", "did", path, "--out", did, "--visits", "pre,post", "--shards", "1"], None),
        ("run-did", [binary, "run", did], "plan-did"),
        ("plan-de", [binary, "plan", "de", path, "--out", de, "--groupby-key", "target_gene",
                     "--reference", "non-targeting", "--shards", "1"], None),
        ("run-de", [binary, "run", de], "plan-de"),
    ]


def run_one(binary, path, timeout):
    work = tempfile.mkdtemp(prefix="corpus-run-")
    out = {}
    results = {}
    try:
        for name, argv, needs in commands(binary, path, work):
            if needs and out.get(needs, {}).get("exit") != 0:
                out[name] = {"outcome": "skipped"}
                continue
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            try:
                _, err = proc.communicate(timeout=timeout)
                hung = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, err = proc.communicate()
                hung = True
            seconds = time.monotonic() - start
            lines = err.decode(errors="replace").splitlines()
            code = proc.returncode
            record = {"exit": None if hung else (code if code >= 0 else None),
                      "signal": None if hung or code >= 0 else signal.Signals(-code).name,
                      "hang": hung, "seconds": round(seconds, 3),
                      "stderr": next((l for l in lines if "error" in l), lines[0] if lines else "")[:300],
                      "stderr_lines": len([l for l in lines if "error:" in l])}
            out[name] = record
            if name.startswith("run-") and code == 0:
                run_dir = argv[-1]
                try:
                    results[name] = open(os.path.join(run_dir, "results.csv"), "rb").read()
                except OSError:
                    results[name] = None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, results


def judge(entry, command, record, base_results, results):
    if record.get("outcome") == "skipped":
        return "skipped"
    if record["hang"]:
        return "hang"
    if record["signal"]:
        return "crash"
    corrupt = entry["corrupt"]
    if record["exit"] == 0:
        if corrupt == "yes" and command in entry["must_fail"]:
            return "exit0-corrupt"
        if corrupt == "no" and entry["kind"] == "byte" and command in results and base_results.get(command) is not None \
                and results[command] != base_results[command]:
            return "silent-wrong"
        return "ok"
    if corrupt == "no" and command in entry.get("must_pass", ["inspect", "validate", "plan-did", "run-did", "plan-de", "run-de"]) \
            and entry["kind"] in ("base", "byte"):
        return "false-error"
    if record["exit"] != 2 or record["stderr_lines"] != 1:
        return "unclean"
    return "error"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--bin", default=None, help="directory of sctrial-plan (default: PATH)")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--sample", type=int, default=0, help="run only this many files (chosen by --seed; bases always)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=0, help="stop starting files after this long")
    p.add_argument("--report", default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    manifest = json.load(open(os.path.join(args.corpus, "manifest.json")))["files"]
    binary = os.path.join(args.bin, "sctrial-plan") if args.bin else shutil.which("sctrial-plan")
    if args.bin:
        os.environ["PATH"] = args.bin + os.pathsep + os.environ["PATH"]
    names = sorted(n for n in manifest if os.path.exists(os.path.join(args.corpus, n)))
    bases = [n for n in names if manifest[n]["kind"] == "base"]
    others = [n for n in names if manifest[n]["kind"] != "base"]
    if args.sample:
        random.Random(args.seed).shuffle(others)
        others = others[: args.sample]
    clock = time.monotonic()
    report, base_results = {}, {}
    for name in bases:  # first: their results are what valid mutants must reproduce
        report[name], base_results[name] = run_one(binary, os.path.join(args.corpus, name), args.timeout)
    with futures.ThreadPoolExecutor(args.jobs) as pool:
        pending = {}
        queue = list(others)
        while queue or pending:
            while queue and len(pending) < args.jobs and not (args.max_seconds and time.monotonic() - clock > args.max_seconds):
                name = queue.pop(0)
                pending[pool.submit(run_one, binary, os.path.join(args.corpus, name), args.timeout)] = name
            if not pending:
                break
            done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for f in done:
                name = pending.pop(f)
                outcome, results = f.result()
                base = manifest[name]["base"]
                for command, record in outcome.items():
                    record["outcome"] = judge(manifest[name], command, record, base_results.get(base, {}), results)
                report[name] = outcome
    for name in bases:
        for command, record in report[name].items():
            record["outcome"] = judge(manifest[name], command, record, {}, {})
    totals = {"files": len(report), "runs": 0}
    signals = {}
    for name, outcome in report.items():
        for command, record in outcome.items():
            if record["outcome"] == "skipped":
                totals["skipped"] = totals.get("skipped", 0) + 1
                continue
            totals["runs"] += 1
            totals[record["outcome"]] = totals.get(record["outcome"], 0) + 1
            if record["outcome"] == "crash":
                signals[record["signal"]] = signals.get(record["signal"], 0) + 1
            if record["outcome"] in BAD and not args.quiet:
                print(f"{record['outcome']:13s} {command:9s} {name}  [{manifest[name]['note'][:60]}]  "
                      f"{record.get('signal') or record.get('exit')} {record['seconds']}s  {record['stderr'][:160]}")
    totals["crashes_by_signal"] = signals
    totals["seconds"] = round(time.monotonic() - clock, 1)
    print(json.dumps(totals, sort_keys=True))
    if args.report:
        with open(args.report, "w") as fh:
            json.dump({"totals": totals, "runs": report}, fh, indent=1, sort_keys=True)
    sys.exit(1 if any(totals.get(k) for k in BAD) else 0)


if __name__ == "__main__":
    main()
