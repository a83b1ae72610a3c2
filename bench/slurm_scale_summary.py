"""Summarises bench/slurm_scale.sh's measurements: summary.json, summary.md and a printed table.

Usage: slurm_scale_summary.py OUT_DIR MAX_CONCURRENT MAX_ARRAY_SIZE N...
Reads, for each N, OUT_DIR/nN/ (the files slurm_scale.sh wrote) and OUT_DIR/calls.log (the Slurm
commands our client ran, tagged by phase). Every figure comes from those files; medians of the
repeated timings. sdiag counters are deltas: during the wait = (after - before), minus the RPCs of
the `status` calls made while the run was running (one squeue each, counted by the wrapper).
"""
import json
import os
import re
import statistics
import sys

# RPCs that Slurm's client commands send (squeue, sbatch, scontrol show config, sacct, scancel);
# `scontrol show config` also pings the controller (REQUEST_PING) to print whether it is up.
CLIENT = {"REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_PARTITION_INFO", "REQUEST_BUILD_INFO", "REQUEST_PING",
          "REQUEST_SUBMIT_BATCH_JOB", "REQUEST_FED_INFO", "REQUEST_CANCEL_JOB_STEP", "REQUEST_KILL_JOB",
          "REQUEST_JOB_USER_INFO", "REQUEST_NODE_INFO"}
# The measurement's own (sdiag).
OURS = {"REQUEST_STATS_INFO", "REQUEST_STATS_RESET"}
LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:(\d+)\s+total_time:(\d+)")


def sdiag(path):
    """{type: (count, total_time_us)} of the 'by message type' section; {} if the file is absent."""
    result = {}
    if not os.path.exists(path):
        return result
    section = None
    for line in open(path):
        if line.startswith("Remote Procedure Call statistics by message type"):
            section = "type"
            continue
        if line.startswith("Remote Procedure Call statistics by user") or line.startswith("Pending RPC"):
            section = None
            continue
        m = LINE.match(line)
        if section == "type" and m:
            result[m.group(1)] = (int(m.group(2)), int(m.group(4)))
    return result


def delta(after, before):
    return {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1]) for k in after}


def times(path):
    """[(seconds, peak_rss_kb, status)] from a `timed` file."""
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 3:
            rows.append((float(parts[0]), int(parts[1]) if parts[1].isdigit() else 0, int(parts[2])))
    return rows


def med(rows):
    return round(statistics.median(r[0] for r in rows), 3) if rows else None


def rss_mb(rows):
    return round(max(r[1] for r in rows) / 1024, 1) if rows else None


def timev(path):
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        line = line.strip()
        if line.startswith("Maximum resident set size"):
            out["peak_rss_mb"] = round(int(line.rsplit(":", 1)[1]) / 1024, 1)
        elif line.startswith("Elapsed (wall clock) time"):
            value = line.split("):", 1)[1].strip()
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            out["elapsed_s"] = round(seconds, 2)
    return out


def calls(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 4:
                rows.append({"t": float(parts[0]), "tag": parts[1], "command": parts[2], "lines": int(parts[3])})
    return rows


def one(out, n, all_calls):
    d = os.path.join(out, f"n{n}")
    if not os.path.isdir(d):
        return None
    result = run_figures(d, all_calls) if os.path.exists(os.path.join(d, "submit.start")) else {"shards": n}
    rest_figures(d, all_calls, result)
    return result


def run_figures(d, all_calls):
    start = float(open(os.path.join(d, "submit.start")).read())
    end = float(open(os.path.join(d, "submit.end")).read())
    submitted_at = None
    finished_lines = 0
    for line in open(os.path.join(d, "submit.stderr")):
        stamp, _, text = line.partition(" ")
        if "submitted" in text and submitted_at is None:
            submitted_at = float(stamp)
        if "shard tasks finished" in text:
            finished_lines += 1
    jobs = json.load(open(os.path.join(d, "jobs.json")))
    plan = json.load(open(os.path.join(d, "run", "plan.json")))
    shards = len(plan["shards"])
    arrays = len(jobs["submissions"][-1]["arrays"])
    # The wait's calls: tagged "wait", in this run's window.
    mine = [c for c in all_calls if start <= c["t"] <= end]
    wait_calls = [c for c in mine if c["tag"] == "wait"]
    polls = [c for c in wait_calls if c["command"] == "squeue"]
    by_command = {}
    for c in wait_calls:
        by_command[c["command"]] = by_command.get(c["command"], 0) + 1
    status_running_calls = [c for c in mine if c["tag"] == "status-running"]

    before, after = sdiag(os.path.join(d, "sdiag.before")), sdiag(os.path.join(d, "sdiag.after"))
    whole = delta(after, before)
    status_block = delta(sdiag(os.path.join(d, "sdiag.status.after")), sdiag(os.path.join(d, "sdiag.status.before")))
    # The `status` calls made while the run was running are not the wait's: each ran one squeue,
    # which costs REQUEST_PARTITION_INFO plus REQUEST_JOB_INFO, or for a single job id
    # REQUEST_JOB_INFO_SINGLE and REQUEST_FED_INFO (Slurm 22.05; status asks for the arrays only).
    # Subtracting the status block's sdiag delta instead would also remove the wait's own polls
    # that fell inside the block.
    statuses = sum(1 for c in status_running_calls if c["command"] == "squeue")
    theirs = {"REQUEST_PARTITION_INFO": statuses}
    if arrays == 1:
        theirs.update({"REQUEST_JOB_INFO_SINGLE": statuses, "REQUEST_FED_INFO": statuses})
    else:
        theirs["REQUEST_JOB_INFO"] = statuses
    wait = {k: (v[0] - theirs.get(k, 0), v[1]) for k, v in whole.items()}
    wait = {k: v for k, v in wait.items() if v[0] and k not in OURS}
    client = {k: v for k, v in wait.items() if k in CLIENT}
    other = {k: v for k, v in wait.items() if k not in CLIENT}
    client_total = sum(v[0] for v in client.values())
    # The polling's share: without the submission (its sbatch calls, and the scontrol show config
    # calls made before the first poll, each one REQUEST_BUILD_INFO and one REQUEST_PING).
    first_poll = polls[0]["t"] if polls else end
    submission_scontrol = sum(1 for c in wait_calls if c["command"] == "scontrol" and c["t"] < first_poll)
    polling_rpcs = (client_total - wait.get("REQUEST_SUBMIT_BATCH_JOB", (0, 0))[0]
                    - min(submission_scontrol, wait.get("REQUEST_BUILD_INFO", (0, 0))[0])
                    - min(submission_scontrol, wait.get("REQUEST_PING", (0, 0))[0]))
    polling_scontrol = sum(1 for c in wait_calls if c["command"] == "scontrol" and c["t"] >= first_poll)
    job_info = wait.get("REQUEST_JOB_INFO", (0, 0))

    reduce_job = None
    log = os.path.join(d, "reduce_job.log")
    if os.path.exists(log):
        m = re.search(r"([0-9.]+) s\s*$", open(log).read().strip())
        reduce_job = float(m.group(1)) if m else None
    sizes = {}
    if os.path.exists(os.path.join(d, "sizes")):
        for line in open(os.path.join(d, "sizes")):
            size, path = line.split(None, 1)
            sizes[os.path.basename(path.strip())] = int(size)
    total = end - start
    result = {
        "shards": shards,
        "arrays": arrays,
        "units_per_shard": round(len(plan["analysis"].get("features", [])) / shards, 1) if isinstance(plan.get("analysis"), dict) and isinstance(plan["analysis"].get("features"), list) else None,
        "plan_s": med(times(os.path.join(d, "plan.times"))),
        "submit_s": round(submitted_at - start, 3) if submitted_at else None,
        "run_total_s": round(total, 1),
        "shards_per_s": round(shards / total, 2),
        "submit_wait_process": timev(os.path.join(d, "submit.timev")),
        "exit_status": int(open(os.path.join(d, "submit.status")).read()),
        "polls": len(polls),
        "progress_lines": finished_lines,
        "squeue_lines_per_poll": {"median": statistics.median(c["lines"] for c in polls) if polls else None,
                                  "max": max((c["lines"] for c in polls), default=None)},
        "commands_during_wait": by_command,
        "rpc_during_wait": {k: {"count": v[0], "total_us": v[1]} for k, v in sorted(wait.items(), key=lambda kv: -kv[1][0])},
        "client_rpcs_during_wait": client_total,
        "polling_rpcs": polling_rpcs,
        "polling_rpcs_per_poll": round(polling_rpcs / len(polls), 2) if polls else None,
        "polling_scontrol_calls": polling_scontrol,
        "node_and_other_rpcs_during_wait": sum(v[0] for v in other.values()),
        "job_info_ave_us": round(job_info[1] / job_info[0]) if job_info[0] else None,
        "status_running": {"median_s": med(times(os.path.join(d, "status_running.times"))),
                           "peak_rss_mb": rss_mb(times(os.path.join(d, "status_running.times"))),
                           "runs": len(times(os.path.join(d, "status_running.times"))),
                           "slurm_calls": len(status_running_calls),
                           "sdiag_block_client_delta": {k: v[0] for k, v in status_block.items() if v[0] and k in CLIENT}},
        "status_finished": {"median_s": med(times(os.path.join(d, "status_finished.times"))),
                            "peak_rss_mb": rss_mb(times(os.path.join(d, "status_finished.times"))),
                            "runs": len(times(os.path.join(d, "status_finished.times")))},
        "reduce_job_s": reduce_job,
        "reduce": {"median_s": med(times(os.path.join(d, "reduce.times"))),
                   "peak_rss_mb": rss_mb(times(os.path.join(d, "reduce.times"))),
                   "runs": len(times(os.path.join(d, "reduce.times"))),
                   "same_results": open(os.path.join(d, "reduce.same")).read().strip() == "same"},
        "bytes": sizes,
    }
    return result


def rest_figures(d, all_calls, result):
    sbatch_only, rest = times(os.path.join(d, "submit_sbatch.times")), times(os.path.join(d, "submit_rest.times"))
    if sbatch_only:
        result["submit_only_sbatch"] = {"s": med(sbatch_only), "peak_rss_mb": rss_mb(sbatch_only)}
    if rest:
        result["submit_only_rest"] = {"s": med(rest), "peak_rss_mb": rss_mb(rest), "exit_status": rest[-1][2]}
    if os.path.exists(os.path.join(d, "jobs_rest.json")):
        result["arrays_rest"] = len(json.load(open(os.path.join(d, "jobs_rest.json")))["submissions"][-1]["arrays"])
    # One states() query (what each --wait poll sends) per client, measured through `status`.
    for via, marker in (("rest", ("poll-rest", "scontrol")), ("sbatch", ("poll-sbatch", "squeue"))):
        block = delta(sdiag(os.path.join(d, f"sdiag.poll_{via}.after")), sdiag(os.path.join(d, f"sdiag.poll_{via}.before")))
        count = sum(1 for c in all_calls if (c["tag"], c["command"]) == marker)
        if block and count:
            rpcs = {k: v[0] for k, v in block.items() if v[0] and k in CLIENT}
            result[f"status_rpcs_{via}"] = {"calls": count, "rpcs": rpcs,
                                            "per_call": {k: round(v / count, 2) for k, v in rpcs.items()}}


def main():
    out, k, max_array = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ns = [int(x) for x in sys.argv[4:]]
    all_calls = calls(os.path.join(out, "calls.log"))
    runs = {n: r for n in ns if (r := one(out, n, all_calls))}
    machine = {"cpus": os.cpu_count(), "uname": " ".join(os.uname()[i] for i in (0, 2, 4))}
    summary = {"max_concurrent": k, "max_array_size": max_array, "machine": machine, "runs": runs}
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)

    def cell(v):
        return "-" if v is None else str(v)

    def safe(fn):
        def wrapped(r):
            try:
                return fn(r)
            except (KeyError, TypeError):
                return "-"
        return wrapped

    rows = [
        ("shards / arrays", lambda r: f"{r['shards']} / {cell(r.get('arrays'))}"),
        ("plan (s)", lambda r: cell(r["plan_s"])),
        ("submit, until submitted (s)", lambda r: cell(r["submit_s"])),
        ("submit via rest (s; arrays)", lambda r: f"{cell(r.get('submit_only_rest', {}).get('s'))}; {cell(r.get('arrays_rest'))}"),
        ("whole run, submit --wait (s)", lambda r: f"{r['run_total_s']} ({r['shards_per_s']} shards/s)"),
        ("polls (squeue calls)", lambda r: cell(r["polls"])),
        ("squeue lines per poll, median / max", lambda r: f"{cell(r['squeue_lines_per_poll']['median'])} / {cell(r['squeue_lines_per_poll']['max'])}"),
        ("client RPCs during submit --wait", lambda r: ", ".join(f"{k} {v['count']}" for k, v in r["rpc_during_wait"].items() if k in CLIENT)),
        ("polling RPCs (per poll); scontrol calls while polling", lambda r: f"{r['polling_rpcs']} ({cell(r['polling_rpcs_per_poll'])}); {r['polling_scontrol_calls']}"),
        ("slurmd/job RPCs during wait", lambda r: f"{r['node_and_other_rpcs_during_wait']} (" + ", ".join(f"{k} {v['count']}" for k, v in r["rpc_during_wait"].items() if k not in CLIENT) + ")"),
        ("REQUEST_JOB_INFO mean (us)", lambda r: cell(r["job_info_ave_us"])),
        ("status while running, median (s)", lambda r: f"{cell(r['status_running']['median_s'])} ({r['status_running']['runs']} runs, {cell(r['status_running']['peak_rss_mb'])} MB)"),
        ("status finished, median (s)", lambda r: f"{cell(r['status_finished']['median_s'])} ({r['status_finished']['runs']} runs, {cell(r['status_finished']['peak_rss_mb'])} MB)"),
        ("reduce job (its log, s)", lambda r: cell(r["reduce_job_s"])),
        ("reduce RUN, median (s)", lambda r: f"{cell(r['reduce']['median_s'])} ({r['reduce']['runs']} runs, {cell(r['reduce']['peak_rss_mb'])} MB, same results: {r['reduce']['same_results']})"),
        ("one poll's RPCs, rest (per status call)", lambda r: ", ".join(f"{k} {v}" for k, v in r.get("status_rpcs_rest", {}).get("per_call", {}).items()) or "-"),
        ("one poll's RPCs, sbatch (per status call)", lambda r: ", ".join(f"{k} {v}" for k, v in r.get("status_rpcs_sbatch", {}).get("per_call", {}).items()) or "-"),
        ("peak RSS submit --wait (MB)", lambda r: cell(r["submit_wait_process"].get("peak_rss_mb"))),
        ("peak RSS submit via rest (MB)", lambda r: cell(r.get('submit_only_rest', {}).get('peak_rss_mb'))),
        ("plan.json / jobs.json (bytes)", lambda r: f"{cell(r['bytes'].get('plan.json'))} / {cell(r['bytes'].get('jobs.json'))}"),
    ]
    header = "| | " + " | ".join(f"N = {n}" for n in runs) + " |"
    lines = [f"Slurm scale, MaxArraySize {max_array}, --max-concurrent {k}, {machine['cpus']} CPUs ({machine['uname']})", "",
             header, "| --- |" + " --- |" * len(runs)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(safe(fn)(r) for r in runs.values()) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as fh:
        fh.write(text)
    print(text)
    print(f"written: {os.path.join(out, 'summary.json')}, {os.path.join(out, 'summary.md')}")


if __name__ == "__main__":
    main()
