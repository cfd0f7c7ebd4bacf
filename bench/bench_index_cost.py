"""The write cost of this issue's indexing: creates/s and If-Match updates/s of an older commit ("before")
and of the working tree ("after"), measured alternately in one run with the shared fhirload driver.

    .venv/bin/python bench/bench_index_cost.py --before 6b3c05c [--rounds 2] [--patients 1000] [--duration 10]

The older commit is checked out as a ``git worktree`` under ``bench/out/`` and served with this venv's
packages (``run_fhirload.py --source``); each round seeds a fresh database, then times the ``create_task``
and ``update_task`` phases. Rounds alternate before/after so that drift of the shared machine hits both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

PHASES = ("create_task", "update_task")


def worktree(commit: str) -> Path:
    path = bl.out_dir() / f"worktree-{commit}"
    if not path.exists():
        subprocess.run(["git", "-C", str(bl.REPO), "worktree", "add", "--detach", str(path), commit], check=True)
    return path


def one_run(source: Path | None, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, str(bl.BENCH / "run_fhirload.py"), "--skip-limit", "--phases", ",".join(PHASES),
           "--patients", str(args.patients), "--duration", str(args.duration)]
    if source is not None:
        cmd += ["--source", str(source)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    path = Path(out.strip().splitlines()[-1].removeprefix("JSON:").strip())
    results = json.loads(path.read_text())["ours"]["results"]
    return {op: results[op]["rps"] for op in PHASES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="commit to compare with (e.g. the one before the issue)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    before = worktree(args.before)
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name, source in (("before", before), ("after", None)):
            bl.eprint(f"== round {r + 1}: {name}")
            runs[name].append(one_run(source, args))
    print(f"\n{'op':<12} {'before (req/s)':>28} {'after (req/s)':>28} {'after/before':>13}")
    summary = {}
    for op in PHASES:
        b = [x[op] for x in runs["before"]]
        a = [x[op] for x in runs["after"]]
        ratio = statistics.median(a) / statistics.median(b)
        summary[op] = {"before": b, "after": a, "ratio_of_medians": ratio}
        print(f"{op:<12} {', '.join(f'{v:,.0f}' for v in b):>28} {', '.join(f'{v:,.0f}' for v in a):>28}"
              f" {ratio:>13.2f}")
    path = bl.out_dir() / f"index-cost-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"before_commit": args.before, "machine": bl.machine_info(),
                                "settings": vars(args), "results": summary}, indent=1))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
