"""Run the benchmarks of bench/, print one table of figures against their targets, write JSON.

Each benchmark module has ``run(quick) -> dict`` (its raw figures) and ``rows(result) -> list[Row]``
(what the summary table shows); ``table(result) -> str``, where a module has one, is its detailed
table (``--details``). Every ratio in the table is measured within one run.

    python -m bench [--quick] [--only NAME,...] [--json PATH] [--workdir DIR] [--details]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from tests.support.datasets import DATA_ENV

# Benchmark modules of bench/, in running order; True where a plain run includes it.
BENCHES = {
    "embeddings": True,
    "backends": True,
    "scifact": True,
    "ingest": True,  # SciFact ingested end to end against the raw engine, in turns
    "index_scale": True,
    "clustering": True,
    "folders": True,
    "wrk": True,  # HTTP against the raw engine with wrk; rows say "not run" without it
    "load": False,  # mixed load for 60 s; not among the figures
    "replicas": False,  # needs PostgreSQL and nginx; 1, 2 and 3 replicas, started in turn
    "postgres": False,  # needs a PostgreSQL server; SciFact embedded once, searched on both stores
    "index_backends": False,  # FAISS against Qdrant: another SciFact ingest, 50k chunks thrice
    "hostile": False,  # 64 clients for 45 s alone, then 45 s beside hostile requests of every kind
    "fusion": False,  # hybrid fusion on three sets in-process; embeds them once (cached)
}
ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("torch", "onnxruntime", "faiss-cpu", "sentence-transformers", "transformers", "numpy")


@dataclass
class Row:
    """One figure of the summary table; ``ok`` is None where no target applies."""

    measure: str
    value: float | None  # None: not measured in this run (``target`` says what it would be held to)
    unit: str = ""
    target: str = ""
    ok: bool | None = None
    digits: int = 2

    def shown(self) -> str:
        if self.value is None:
            return "not run"
        return f"{self.value:,.{self.digits}f} {self.unit}".strip()


def at_least(
    measure: str, value: float | None, limit: float, unit: str = "", digits: int = 2
) -> Row:
    """A figure that must reach ``limit``."""
    ok = None if value is None else value >= limit
    return Row(measure, value, unit, f">= {limit:g} {unit}".strip(), ok, digits)


def at_most(
    measure: str, value: float | None, limit: float, unit: str = "", digits: int = 2
) -> Row:
    """A figure that must not exceed ``limit``."""
    ok = None if value is None else value <= limit
    return Row(measure, value, unit, f"<= {limit:g} {unit}".strip(), ok, digits)


def within(measure: str, value: float | None, tolerance: float, digits: int = 4) -> Row:
    """A difference that must stay within plus or minus ``tolerance``."""
    ok = None if value is None else abs(value) <= tolerance
    return Row(measure, value, "", f"within ±{tolerance:g}", ok, digits)


def p99(ordered: list[float]) -> float:
    """The 99th percentile of an ascending list, by nearest rank (the last value of a list under
    100 long but one)."""
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def markdown(rows: list[tuple[str, Row]]) -> str:
    """The rows as one aligned Markdown table."""
    verdict = {True: "pass", False: "FAIL", None: ""}
    cells = [[bench, r.measure, r.shown(), r.target, verdict[r.ok]] for bench, r in rows]
    header = ["bench", "measure", "value", "target", "ok"]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    rule = ["-" * w for w in widths]
    rule[2] = rule[2][:-1] + ":"  # values align right

    def line(row: list[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        padded[2] = row[2].rjust(widths[2])
        return "| " + " | ".join(padded) + " |"

    return "\n".join(line(row) for row in [header, rule, *cells])


def machine() -> dict:
    """What the figures were measured on."""
    cpuinfo = _cpuinfo()
    model = (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    flags = next(
        (line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": next(model, platform.processor()),
        "cpu_flags": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags],
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),  # others' work on the machine skews timings
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in VERSIONS},
        "commit": _commit(),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The checkout's commit, with "+changes" if the tree differs from it."""
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return None
    return (head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")) or None


def run_one(name: str, quick: bool, workdir: Path | None) -> tuple[dict, list[Row], str]:
    """One benchmark's result, summary rows and detailed table ("" where it has none)."""
    module = importlib.import_module(f"bench.{name}")
    options = {}
    if workdir and "workdir" in inspect.signature(module.run).parameters:
        options["workdir"] = workdir
    result = module.run(quick, **options)
    details = module.table(result) if hasattr(module, "table") else ""
    return result, module.rows(result), details


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the chosen benchmarks; exit status 1 if one crashed (missed targets show as FAIL)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under two minutes)")
    parser.add_argument(
        "--only", help=f"comma-separated, of {', '.join(BENCHES)} (default: all but load)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write the figures and machine facts (default: %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep SciFact's server data here (torch in DIR, others in DIR/<backend>) and reuse "
        "it in later runs instead of ingesting again",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help=f"the folder holding scifact/, banking77/ and ag_news/ (default: ${DATA_ENV}, else "
        "../shared/data beside the checkout); each benchmark says where to get what it misses",
    )
    parser.add_argument("--details", action="store_true", help="also each benchmark's own table")
    args = parser.parse_args(argv)
    if args.data:
        os.environ[DATA_ENV] = str(args.data.resolve())
    names = args.only.split(",") if args.only else [n for n, default in BENCHES.items() if default]
    if unknown := [n for n in names if n not in BENCHES]:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")

    report: dict = {"machine": machine(), "quick": args.quick, "benches": {}}
    rows: list[tuple[str, Row]] = []
    start = time.perf_counter()
    for name in names:
        print(f"{name}...", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        try:
            result, bench_rows, details = run_one(name, args.quick, args.workdir)
            entry = {"result": result}
        except Exception as error:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            entry, details = {"crashed": repr(error)}, ""
            bench_rows = [Row(f"crashed: {error!r}"[:100], None, ok=False)]
        entry["seconds"] = time.perf_counter() - begin
        print(f"{name}: {entry['seconds']:.0f} s", file=sys.stderr, flush=True)
        report["benches"][name] = entry
        rows += [(name, row) for row in bench_rows]
        if args.details and details:
            print(f"### {name}\n\n{details}\n")
    report["seconds"] = time.perf_counter() - start
    report["machine"]["load_average_after"] = os.getloadavg()
    report["rows"] = [{"bench": name, **asdict(row)} for name, row in rows]
    args.json.write_text(json.dumps(report, indent=2, default=_plain))
    print(summary(report, args.json))
    print(markdown(rows))
    return 1 if any("crashed" in entry for entry in report["benches"].values()) else 0


def run_alone(name: str) -> None:
    """``python -m bench.<name> [options]``: the runner, for that benchmark only."""
    sys.exit(main(["--only", name, *sys.argv[1:]], prog=f"python -m bench.{name}"))


def summary(report: dict, path: Path) -> str:
    """One line on the machine and the run, above the table."""
    m = report["machine"]
    v = m["versions"]
    return (
        f"{m['cpu']}, {m['usable_cores']} cores, load average {m['load_average'][0]:.1f} -> "
        f"{m['load_average_after'][0]:.1f}; torch {v['torch']}, onnxruntime {v['onnxruntime']}, "
        f"faiss {v['faiss-cpu']}; {'quick' if report['quick'] else 'full'} run in "
        f"{report['seconds']:.0f} s; JSON in {path}\n"
    )


def _plain(value: object) -> object:
    """numpy scalars as Python numbers in the JSON."""
    return value.item() if hasattr(value, "item") else str(value)
