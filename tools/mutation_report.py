"""The mutation score of `make mutation`, per module, from the results mutmut leaves in mutants/.

Score = killed / (killed + survived + no tests): a mutant no test runs counts against the module,
timeouts count as killed (the mutant hung a test) and
are shown in a column of their own. Survivors are listed by name, to inspect with
``mutmut show <name>``. Exit status 1 when a module scores under --minimum.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, -11, -9}
#: mutmut's exit codes for a mutant stopped at its time limit: killed, but shown apart, since a
#: loaded machine can turn a slow survivor into a timeout
TIMEOUT = {24, 36, 152, 255, -24}
SURVIVED = {0}
UNTESTED = {5, 33}


def outcome(exit_code: int | None) -> str:
    if exit_code in KILLED:
        return "killed"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code in SURVIVED:
        return "survived"
    if exit_code in UNTESTED:
        return "no tests"
    return "not run"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="mutants", help="mutmut's working directory")
    parser.add_argument("--minimum", type=float, default=85.0, help="lowest acceptable score, percent")
    args = parser.parse_args()

    rows, survivors = [], []
    totals: Counter[str] = Counter()
    for meta in sorted(Path(args.root).rglob("*.py.meta")):
        module = meta.relative_to(args.root).as_posix().removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(outcome(code) for code in codes.values())
        survivors += [n for n, code in sorted(codes.items()) if outcome(code) in ("survived", "no tests")]
        totals.update(counts)
        rows.append((module, counts))
    if not rows:
        print(f"no mutmut results under {args.root}/: run `make mutation` first", file=sys.stderr)
        return 2

    def score(counts: Counter[str]) -> float:
        killed = counts["killed"] + counts["timeout"]
        judged = killed + counts["survived"] + counts["no tests"]
        return 100.0 * killed / judged if judged else float("nan")

    print(
        f"{'module':<36} {'mutants':>8} {'killed':>7} {'timeout':>8}"
        f" {'survived':>9} {'no tests':>9} {'score':>7}"
    )
    for module, counts in [*rows, ("all core modules", totals)]:
        print(
            f"{module:<36} {sum(counts.values()):>8} {counts['killed']:>7} {counts['timeout']:>8}"
            f" {counts['survived']:>9} {counts['no tests']:>9} {score(counts):>6.1f}%"
        )
    if totals["not run"]:
        print(f"\n{totals['not run']} mutants not run yet")
    print(f"\nsurvivors ({len(survivors)}):")
    for name in survivors:
        print(f"  {name}")
    low = [module for module, counts in rows if not score(counts) >= args.minimum]
    if low:
        print(f"\nunder {args.minimum:.0f}%: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
