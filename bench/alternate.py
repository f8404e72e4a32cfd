"""Benchmark driver (by hand, not a test): one benchmark script under two or more environments,
alternating, in one run, so a setting's before and after share the machine's moment.

Each `--side NAME:VAR=VALUE[,VAR=VALUE]` is one environment (added to this shell's). Round i
runs every side once, in turn, the order turned round on every other round (A B, B A, A B …),
so neither side always runs first on a warmer or a busier machine. A side may set `TREE=PATH`:
that side runs the script from another checkout (e.g. `git worktree add /tmp/before <commit>`),
the script's path taken relative to it, with this checkout's Python; so a code change's before
and after run side by side too. The script after `--` is run
as it is, with its options; its JSON report is kept whole per run, and the figures named by
`--pick` (dotted paths into the report, e.g. `requests_per_second`,
`cpu.by_role.gunicorn.cpu_ms_per_unit`) are printed per side, run by run, with the load
average before each run. A run that exits non-zero stops the driver (its stderr is shown).

    .venv/bin/python bench/alternate.py --rounds 3 \\
        --side before:DATABASE_SERVER_SIDE_BINDING=0 --side after:DATABASE_SERVER_SIDE_BINDING=1 \\
        --pick requests_per_second --pick latency_ms.p99 --pick cpu.by_role.gunicorn.cpu_ms_per_unit \\
        -- bench/intake.py --requests 1500

Prints JSON: `config` (sides, script, rounds), `runs` (side, round, load average before, the
picked figures, the whole report) and `summary` (per side and figure: every value and the median).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", action="append", required=True, metavar="NAME:VAR=VALUE[,VAR=VALUE]",
                        help="one environment; give two or more")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pick", action="append", default=[], metavar="DOTTED.PATH",
                        help="a figure of the script's JSON report to tabulate")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs (the machine settles)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- then the benchmark script and its options")
    args = parser.parse_args()
    if args.script[:1] == ["--"]:
        args.script = args.script[1:]
    if not args.script:
        parser.error("give the benchmark after --, e.g. -- bench/intake.py --requests 1500")
    if len(args.side) < 2:
        parser.error("give at least two --side")
    return args


def side_env(spec: str) -> tuple[str, dict]:
    name, _, assignments = spec.partition(":")
    env = {}
    for pair in filter(None, assignments.split(",")):
        var, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--side {spec!r}: {pair!r} is not VAR=VALUE")
        env[var] = value
    return name, env


def pick(report: dict, path: str):
    value = report
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def main():
    args = parse_args()
    sides = [side_env(spec) for spec in args.side]
    script = [sys.executable, *args.script]
    runs = []
    for round_no in range(1, args.rounds + 1):
        order = sides if round_no % 2 else list(reversed(sides))
        for name, extra in order:
            load = os.getloadavg()[0]
            print(f"{time.strftime('%H:%M:%S')} round {round_no}: {name} (load {load:.2f})",
                  file=sys.stderr, flush=True)
            tree = extra.get("TREE", HERE.parent)
            env = {**os.environ, **{var: value for var, value in extra.items() if var != "TREE"}}
            done = subprocess.run(script, env=env, capture_output=True, text=True, cwd=tree)
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-4000:])
                sys.exit(f"{name}, round {round_no}: the benchmark exited {done.returncode}")
            # The report is the first JSON value on stdout (some scripts print a table after it).
            report, _ = json.JSONDecoder().raw_decode(done.stdout.lstrip())
            picked = {path: pick(report, path) for path in args.pick}
            print(f"    {json.dumps(picked)}", file=sys.stderr, flush=True)
            runs.append({"side": name, "round": round_no, "load_before": round(load, 2), "picked": picked,
                         "report": report})
            time.sleep(args.pause)
    summary = {}
    for name, _ in sides:
        mine = [run for run in runs if run["side"] == name]
        summary[name] = {}
        for path in args.pick:
            values = [run["picked"][path] for run in mine if isinstance(run["picked"][path], (int, float))]
            summary[name][path] = {"values": values, "median": statistics.median(values) if values else None}
    config = {"sides": {name: env for name, env in sides}, "script": args.script, "rounds": args.rounds}
    print(json.dumps({"config": config, "runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
