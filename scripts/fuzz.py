"""Fuzz the `hdr` CLI with mutated copies of real files (issue 13, item 10).

    python scripts/fuzz.py --cases 2000 [--seed 0] [--timeout 10] [--workdir /tmp/hdr-fuzz]
                           [--json fuzz-summary.json] [--only 12,57] [--rerun fuzz-summary.json]
                           [--generated-only] [--keep-failures 50] [--jobs 2]

Each case copies seed files (../shared/data brackets, HDR files and photos, plus small
generated ones; generated only when ../shared is absent), mutates one of them (bit flips,
truncation, enlarged header sizes, duplicated chunks, zero-filled tails, wrong extensions,
links to /dev/zero, FIFOs, folders, markup/control characters, 250-character and non-UTF-8
names) or attacks an option (huge or endless exposure files, output = input with -f,
over-long output names, batch name templates escaping the output folder, overflowing
exposures, bad tiles/devices), and runs `hdr fuse`, `hdr tonemap`, `hdr batch` or `hdr expand`
(twostage, CPU) in a subprocess with a time limit. The checks are in scripts/fuzzlib.py.
Cases are deterministic in (seed, index): ``--only`` and ``--rerun`` re-run failures.
Prints totals per class and writes a JSON summary (updated as it goes, so an interrupted run
still has one). Failing case folders are kept under --workdir (up to --keep-failures).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzzlib import cleanup, generated_seeds, make_case, run_case, shared_seeds  # noqa: E402


def write_summary(path: Path, summary: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)


def summarise(results: list, args: argparse.Namespace, seeds_origin: str, started: float, finished: bool) -> dict:
    by_class: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    problems: collections.Counter = collections.Counter()
    for r in results:
        by_class[r.klass]["cases"] += 1
        by_class[r.klass]["failed" if r.problems else "passed"] += 1
        by_class[r.klass][f"exit{r.returncode}"] += 1
        for p in r.problems:
            problems[p.split(":")[0]] += 1
    failing = [r for r in results if r.problems]
    return {
        "finished": finished,
        "seed": args.seed, "mix": args.mix, "cases_planned": args.cases, "cases_run": len(results), "timeout_s": args.timeout,
        "seeds": seeds_origin, "wall_s": round(time.time() - started, 1),
        "passed": len(results) - len(failing), "failed": len(failing),
        "exit_0": sum(r.returncode == 0 for r in results), "exit_1": sum(r.returncode == 1 for r in results),
        "max_peak_rss_mb": max((r.peak_rss_mb for r in results), default=0.0),
        "max_peak_rss_mb_refused": max((r.peak_rss_mb for r in results if r.returncode == 1), default=0.0),
        "max_seconds": max((r.seconds for r in results), default=0.0),
        "mean_seconds": round(sum(r.seconds for r in results) / max(len(results), 1), 2),
        "max_cpu_seconds": max((r.cpu_seconds for r in results), default=0.0),
        "mean_cpu_seconds": round(sum(r.cpu_seconds for r in results) / max(len(results), 1), 2),
        "problems": dict(problems.most_common()),
        "by_class": {k: dict(v) for k, v in sorted(by_class.items())},
        "failing_cases": [{"index": r.index, "class": r.klass, "problems": r.problems, "returncode": r.returncode,
                           "seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb, "args": r.args,
                           "stderr_tail": r.stderr_tail[-300:]} for r in failing],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case (batch x2, expand x3)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hdr-fuzz"))
    parser.add_argument("--json", type=Path, default=Path("fuzz-summary.json"))
    parser.add_argument("--only", default=None, help="comma-separated case indices to run")
    parser.add_argument("--rerun", type=Path, default=None, help="re-run the failing cases of a summary JSON")
    parser.add_argument("--generated-only", action="store_true", help="use only generated seed files")
    parser.add_argument("--keep-failures", type=int, default=50, help="failing case folders to keep")
    parser.add_argument("--max-rss-mb", type=float, default=1024.0, help="peak RSS allowed on refused inputs")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at the same time")
    parser.add_argument("--mix", default="tonemap=0.45,fuse=0.4,batch=0.1,expand=0.05",
                        help="share of each command among the cases")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    cases_root = args.workdir / f"seed{args.seed}"
    cases_root.mkdir(exist_ok=True)
    seeds = generated_seeds(args.workdir / "seeds") if args.generated_only else shared_seeds(args.workdir / "seeds")
    if args.rerun:
        previous = json.loads(args.rerun.read_text())
        args.seed, args.mix = previous["seed"], previous.get("mix", args.mix)  # the same cases again
        indices = [c["index"] for c in previous["failing_cases"]]
    elif args.only:
        indices = [int(i) for i in args.only.split(",")]
    else:
        indices = list(range(args.cases))
    args.cases = len(indices)
    print(f"fuzzing {len(indices)} cases, seed {args.seed}, seed files: {seeds.origin}, timeout {args.timeout:.0f} s",
          flush=True)
    started, results, kept = time.time(), [], 0
    mix = {k: float(v) for k, v in (item.split("=") for item in args.mix.split(","))}

    def one(index: int):
        # each case in its own parent folder, so that parallel cases cannot see each other's files
        case = make_case(seeds, cases_root / f"c{index:05d}", args.seed, index, timeout=args.timeout, weights=mix)
        return case, run_case(case, max_rss_mb=args.max_rss_mb)

    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    for n, (case, result) in enumerate(pool.map(one, indices), 1):
        index = case.index
        results.append(result)
        if result.problems:
            print(f"FAIL case {index} {result.klass}: {'; '.join(result.problems)}", flush=True)
            kept += 1
        if not result.problems or kept > args.keep_failures:
            cleanup(case)
            shutil.rmtree(case.folder.parent, ignore_errors=True)
        if n % 25 == 0 or n == len(indices):
            summary = summarise(results, args, seeds.origin, started, n == len(indices))
            write_summary(args.json, summary)
            print(f"{n}/{len(indices)} cases, {summary['failed']} failing, {summary['wall_s']:.0f} s", flush=True)
    summary = summarise(results, args, seeds.origin, started, True)
    write_summary(args.json, summary)
    print(f"\n{summary['cases_run']} cases in {summary['wall_s']:.0f} s: {summary['passed']} passed, "
          f"{summary['failed']} failed (exit 0: {summary['exit_0']}, exit 1: {summary['exit_1']}); "
          f"max peak RSS {summary['max_peak_rss_mb']:.0f} MB (refused inputs: "
          f"{summary['max_peak_rss_mb_refused']:.0f} MB); slowest case {summary['max_seconds']:.1f} s")
    for problem, count in summary["problems"].items():
        print(f"  {count:5d}  {problem}")
    print(f"{'class':36s} {'cases':>6s} {'failed':>6s}")
    for klass, counts in summary["by_class"].items():
        print(f"{klass:36s} {counts['cases']:6d} {counts.get('failed', 0):6d}")
    print(f"summary: {args.json}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
