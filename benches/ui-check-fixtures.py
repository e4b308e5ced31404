#!/usr/bin/env python3
"""Loads fixture traces into the real Perfetto UI (../shared/tools/perfetto-ui/ui-check) and
checks that the UI's trace processor saw what the export's --json summary says it wrote: no
import error or data-loss stat, and the same slices (spans and log instants), counter values,
processes and threads, the same thread names by tid, and the trace's start as a UTC time.

Usage: benches/ui-check-fixtures.py WRITE_PERFETTO UI_CHECK [GEN_LAKE]
With GEN_LAKE, a small generated lake (spans, logs, metrics, two processes) is checked too.
Exit status 0 when every trace matches, 1 otherwise.
"""

import datetime
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

COUNTS = {
    "slices": "select count(*) as n from slice",
    "counter_values": "select count(*) as n from counter",
    "processes": "select count(*) as n from process where pid > 0",
    "threads": "select count(*) as n from thread where tid > 0",
}


def export(binary, lake, process, args, out):
    cmd = [binary, process, "--lake", str(lake), "--json", "-o", str(out), *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def expected(summary):
    processes = len(summary["processes"])
    return {
        "slices": summary["spans"]["thread"]
        + summary["spans"]["async"]
        + summary["log_entries"]["total"],
        "counter_values": summary["metrics"]["samples"],
        "processes": processes,
        # The UI adds a main thread (tid = pid) to each process.
        "threads": summary["thread_tracks"] + processes,
    }


THREAD_NAMES = "select tid, name from thread where tid > 0"
UTC_START = "select start_ts, abs_time_str(start_ts) as utc from trace_bounds"


def ui_counts(ui_check, trace, report):
    """The UI's counts, and what it shows of names and times: thread names by tid, and the
    start of the trace as a UTC time (through the trace's real-time clock)."""
    cmd = [ui_check, str(trace), "--json", str(report)]
    for sql in [*COUNTS.values(), THREAD_NAMES, UTC_START]:
        cmd += ["--sql", sql]
    done = subprocess.run(cmd, capture_output=True, text=True)
    result = json.loads(report.read_text())
    by_sql = {q["sql"]: q.get("rows") or [] for q in result["queries"]}
    counts = {name: by_sql[sql][0]["n"] if by_sql[sql] else None for name, sql in COUNTS.items()}
    shown = {
        "thread_names": {r["tid"]: r["name"] for r in by_sql[THREAD_NAMES] if r["name"]},
        "utc_start": by_sql[UTC_START][0]["utc"] if by_sql[UTC_START] else None,
    }
    start_ns = int(by_sql[UTC_START][0]["start_ts"]) if by_sql[UTC_START] else 0
    return done.returncode, result, counts, shown, start_ns


def expected_shown(summary, start_ns):
    """Thread names as the summary gives them, and the trace start in UTC (trace times are
    Unix times)."""
    seconds, ns = divmod(start_ns, 1_000_000_000)
    start = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return {
        "thread_names": {
            t["tid"]: t["name"] for p in summary["processes"] for t in p["threads"]
        },
        "utc_start": start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns:09d}",
    }


def main():
    binary, ui_check = sys.argv[1], sys.argv[2]
    work = pathlib.Path(tempfile.mkdtemp())
    failures = 0
    try:
        lakes = {}
        for name in ["lake", "unreal-lake"]:
            lakes[name] = work / name
            shutil.copytree(ROOT / "fixtures" / name, lakes[name])
        if len(sys.argv) > 3:
            lakes["generated"] = work / "generated"
            subprocess.run(
                [sys.argv[3], "--out", str(lakes["generated"]), "--seed", "5",
                 "--processes", "2", "--threads", "4", "--spans", "4000",
                 "--async-spans", "400", "--logs", "3000", "--measures", "3000"],
                check=True, capture_output=True,
            )
        cases = []
        for lake in lakes.values():
            listed = subprocess.run(
                [binary, "processes", "--lake", str(lake), "--json"],
                check=True, capture_output=True, text=True,
            )
            processes = json.loads(listed.stdout)
            parents = {p["parent_process_id"] for p in processes}
            for p in processes:
                cases.append((lake, p["process_id"], []))
                if p["process_id"] in parents:
                    cases.append((lake, p["process_id"], ["--children"]))
        for i, (lake, process, args) in enumerate(cases):
            trace = work / f"{i}.perfetto-trace"
            summary = export(binary, lake, process, args, trace)
            code, result, counts, shown, start_ns = ui_counts(
                ui_check, trace, work / f"{i}.json")
            want = expected(summary)
            want_shown = expected_shown(summary, start_ns)
            label = f"{lake.name} {process} {' '.join(args)}".strip()
            ok = (code == 0 and result["verdict"] == "ok" and counts == want
                  and shown == want_shown)
            print(f"{'ok  ' if ok else 'FAIL'} {label}: UI {counts}, summary {want}, "
                  f"starts {shown['utc_start']} UTC, loaded in {result.get('load_s')} s")
            if not ok:
                failures += 1
                print(f"     verdict {result['verdict']}, errors {result.get('errors')}")
                if shown != want_shown:
                    print(f"     UI shows {shown}, expected {want_shown}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
