#!/usr/bin/env python3
"""Loads fixture traces into the real Perfetto UI (../shared/tools/perfetto-ui/ui-check) and
checks that the UI's trace processor saw what the export's --json summary says it wrote: no
import error or data-loss stat, and the same slices (spans and log instants), counter values,
processes and threads.

Usage: benches/ui-check-fixtures.py WRITE_PERFETTO UI_CHECK [GEN_LAKE]
With GEN_LAKE, a small generated lake (spans, logs, metrics, two processes) is checked too.
Exit status 0 when every trace matches, 1 otherwise.
"""

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


def ui_counts(ui_check, trace, report):
    cmd = [ui_check, str(trace), "--json", str(report)]
    for sql in COUNTS.values():
        cmd += ["--sql", sql]
    done = subprocess.run(cmd, capture_output=True, text=True)
    result = json.loads(report.read_text())
    by_sql = {q["sql"]: q["rows"] for q in result["queries"]}
    counts = {name: by_sql[sql][0]["n"] for name, sql in COUNTS.items()}
    return done.returncode, result, counts


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
            code, result, counts = ui_counts(ui_check, trace, work / f"{i}.json")
            want = expected(summary)
            label = f"{lake.name} {process} {' '.join(args)}".strip()
            ok = code == 0 and result["verdict"] == "ok" and counts == want
            print(f"{'ok  ' if ok else 'FAIL'} {label}: UI {counts}, summary {want}, "
                  f"loaded in {result.get('load_s')} s")
            if not ok:
                failures += 1
                print(f"     verdict {result['verdict']}, errors {result.get('errors')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
