"""The tables of `python -m compare bench`, printed after a run and by `bench --show REPORT` from a saved one.

    python -m compare bench --device cuda --report bench-cuda.json     # on the GPU machine
    python -m compare bench --show bench-cuda.json                     # its tables, anywhere

The tables are markdown (compare/base/report.py `table(style="markdown")`), so they paste into
docs/benchmarks.md as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from compare.base.errors import UsageError
from compare.base.report import table
from compare.commands.bench.contenders import CONTENDERS

REPORT_KEYS = ("machine", "config", "results", "agreement")  # what --show needs of a saved report


def fmt_time(seconds: float | None, spread: float | None = None) -> str:
    """Milliseconds to three significant digits, with the spread as a relative ±, e.g. "0.44 ±5%"."""
    if seconds is None:
        return "-"
    text = f"{seconds * 1e3:.3g}" if seconds < 10 else f"{seconds * 1e3:.0f}"
    return text if spread is None else f"{text} ±{spread:.0%}"


def ratio_text(result: dict) -> str:
    """The ratio scratch/torch with its spread, or why there is none."""
    if result["ratio"] is None:
        return "n/a (implausible)"
    return f"{result['ratio']:.2f} ±{result['ratio_spread']:.0%}"


def progress_line(result: dict) -> str:
    """One grid point's headline figures, printed as soon as it is measured."""
    scratch_c, torch_c = result["contenders"]["scratch"], result["contenders"]["torch"]
    if result["ratio"] is None:
        why = "; ".join(f"{n} {c['status']}" for n, c in (("scratch", scratch_c), ("torch", torch_c))
                        if c["status"] != "ok")
        return f"  {result['model']:>16} batch {result['batch_size']:>4}: {why}"
    return (f"  {result['model']:>16} batch {result['batch_size']:>4}: scratch {fmt_time(scratch_c['step_s'])} ms, "
            f"torch {fmt_time(torch_c['step_s'])} ms, ratio {result['ratio']:.2f}, scratch at "
            f"{scratch_c['peak_fraction']:.0%} of {result['matmul_gflops']:.0f} GFLOP/s")


def print_tables(results: list[dict], device: str) -> None:
    def cell(r: dict, name: str, key: str) -> str:
        c = r["contenders"][name]
        if c["status"].startswith("implausible"):
            return "implausible"
        if c["status"] != "ok":
            return "n/a"
        if key == "step":
            return fmt_time(c["step_s"], c["step_spread"])
        if key == "epoch":
            return f"{c['epoch_s']:.2f}"
        if key == "peak":
            return f"{c['peak_fraction']:.1%}"
        if key == "gflops":
            return f"{c['gflops']:.1f}"
        if key == "gbytes":
            return f"{c['gbytes_per_s']:.2f}"
        if c["peak_memory_bytes"] is None:
            return "unavailable"
        return f"{c['peak_memory_bytes'] / 2**20:.2f}"

    names = [n for n in CONTENDERS if n in results[0]["contenders"]]
    print(f"\nStep time, ms (median ±half the interquartile range), ratio scratch/torch, fraction of the "
          f"matmul peak ({device}):")
    print(table(["model", "batch", "scratch", "torch", "ratio", *[n for n in names if n not in ("scratch", "torch")],
                 "peak GFLOP/s", "scratch %peak", "torch %peak", "compile %peak"],
                [[r["model"], r["batch_size"], cell(r, "scratch", "step"), cell(r, "torch", "step"), ratio_text(r),
                  *[cell(r, n, "step") for n in names if n not in ("scratch", "torch")],
                  f"{r['matmul_gflops']:.1f}", cell(r, "scratch", "peak"), cell(r, "torch", "peak"),
                  cell(r, "compile", "peak")] for r in results], style="markdown"))
    if "bytes_per_step" in results[0]:  # reports written before the plausibility gate have no throughput
        print_throughput(results, names, cell)
    images = results[0]["contenders"]["scratch"]["epoch_images"]
    print(f"\nOne epoch ({images} images), seconds; peak tensor memory of a training step, MiB:")
    print(table(["model", "batch", *[f"{n} epoch" for n in names], *[f"{n} MiB" for n in names]],
                [[r["model"], r["batch_size"], *[cell(r, n, "epoch") for n in names],
                  *[cell(r, n, "memory") for n in names]] for r in results], style="markdown"))
    contenders = [(n, c) for r in results for n, c in r["contenders"].items()]
    for note in sorted({f"{n}: {c['status']}" for n, c in contenders
                        if c["status"] != "ok" and not c["status"].startswith("implausible")}):
        print(f"  n/a = {note}")
    for r in results:
        for n, c in r["contenders"].items():
            if c["status"].startswith("implausible"):
                print(f"  implausible = {r['model']} batch {r['batch_size']}, {n}: {c['status'].split(': ', 1)[1]}")
    for note in sorted({c["memory_status"] for _, c in contenders if c.get("memory_status")}):
        print(f"  memory {note}")


def print_throughput(results: list[dict], names: list[str], cell) -> None:
    """GFLOP/s and GB/s of each contender beside the limits the run measured (the plausibility gate, point.py)."""
    print("\nThroughput: GFLOP/s of a step's matrix products, GB/s of the bytes it must at least move; no figure "
          "may exceed\nthe best round of the run's matrix-product and copy probes (else it reads implausible):")
    print(table(["model", "batch", "MB/step", *[f"{n} {unit}" for n in names for unit in ("GFLOP/s", "GB/s")],
                 "matmul GFLOP/s", "copy GB/s"],
                [[r["model"], r["batch_size"], f"{r['bytes_per_step'] / 1e6:.2f}",
                  *[cell(r, n, key) for n in names for key in ("gflops", "gbytes")],
                  f"{r['matmul_best_gflops']:.1f}", f"{r['copy_gbytes_per_s']:.1f}"] for r in results],
                style="markdown"))


def print_conclusions(report: dict) -> None:
    """The speed targets judged on the run's figures, and whether scratch and torch agreed."""
    if report.get("targets"):
        print("\nTargets (benchmark figures, not pass/fail checks):")
        for name, t in report["targets"].items():
            print(f"  [{'n/a ' if t is None else 'met ' if t['met'] else 'MISS'}] {name}"
                  + ("" if t is None else f": {t['figure']}"))
    a = report["agreement"]
    failed = [f"{p['model']} batch {p['batch_size']}" for p in a["points"] if not p["passed"]]
    print(f"\nAgreement: scratch and torch losses on the benchmarked steps: "
          f"{'PASSED' if a['passed'] else 'FAILED at ' + ', '.join(failed)} ({a['check']})")
    plausibility = report.get("plausibility")
    if plausibility is not None:  # reports written before the gate have none
        print(f"Plausibility: every figure within the run's measured limits: "
              f"{'PASSED' if plausibility['passed'] else 'FAILED, ' + '; '.join(plausibility['implausible'])}")


def load_report(path: str | Path) -> dict:
    """A saved bench report (JSON written by `bench --report`); UsageError naming the problem otherwise."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--show: no file {path}; give the path of a report written by "
                         f"`python -m compare bench --report PATH`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--show: cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"--show: {path} is not a JSON report ({error})") from None
    command = report.get("command") if isinstance(report, dict) else None
    if command != "bench":
        what = f"a report of `{command}`" if isinstance(command, str) else "not a report of `python -m compare`"
        raise UsageError(f"--show: {path} is {what}, not of `bench`; give a report written by "
                         f"`python -m compare bench --report PATH`")
    missing = [key for key in REPORT_KEYS if key not in report]
    if missing or not report["results"]:
        raise UsageError(f"--show: the bench report {path} has no {', '.join(missing) or 'results'}; "
                         f"write a new one with `python -m compare bench --report PATH`")
    return report


def show(path: str | Path) -> dict:
    """Print the tables of a saved bench report; returns it."""
    report = load_report(path)
    machine, config = report["machine"], report["config"]
    print(f"{path}: {machine.get('gpu', machine['cpu'])}, {machine['threads']} torch thread(s), "
          f"torch {machine['torch']}, {config['dtype']}")
    print_tables(report["results"], config["device"])
    print_conclusions(report)
    return report
