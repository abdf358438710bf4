"""docs/benchmarks.md's runs and tables, and the README's "Speed" table (see docs/figures/__init__.py).

The grid of the three MLPs runs without torch.compile and the typical DataLoader pipeline: with them it would
take many times longer on a shared 2-core machine (compiling every grid point, and decoding images one by one
for blocks as long as torch's). Those two contenders are timed at the lesson's grid point alone.
"""

from __future__ import annotations

from figures import Fields, Run, load, sci

GRID = "--models mlp mlp:hidden=128 mlp:hidden=512,512"
FAMILIES = "bench --models cnn cnn:batch_norm=true vit lstm --no-compile --no-typical --epoch-images 6000"
BEFORE = "348831d1a2cb78c2bc21dc8bd72468d0c85857cc"  # the code before the work on speed of docs/benchmarks.md
RUNS: dict[str, Run] = {
    # every family but the MLP, scratch against torch, on today's code and on the code before the work on speed
    "families-bench": Run(FAMILIES),
    "families-bench-before": Run(FAMILIES, commit=BEFORE),
    "benchmarks-cpu": Run(f"bench {GRID} --no-compile --no-typical", excerpt=(("Step time", None),)),
    "benchmarks-contenders": Run("bench --models mlp --batch-sizes 32", excerpt=(("Step time", None),)),
    "benchmarks-float64": Run(f"bench --dtype float64 {GRID} --no-compile --no-typical",
                              excerpt=(("Step time", None),)),
}


def point(r: Fields, model: str, batch: int) -> Fields:
    """One grid point's result."""
    found = [p for p in r.results if p["model"] == model and p["batch_size"] == batch]
    if not found:
        raise ValueError(f"the bench report has no {model} at batch {batch}")
    return Fields(found[0])


def lesson(r: Fields) -> Fields:
    """The lesson's grid point: 784-16-16-10 at batch 32."""
    return point(r, "784-16-16-10", 32)


def biggest(r: Fields) -> Fields:
    return point(r, "784-512-512-10", 512)


def step(p: Fields, contender: str) -> float:
    return p.contenders[contender]["step_s"]


def mib(p: Fields, contender: str) -> str:
    return f"{p.contenders[contender]['peak_memory_bytes'] / 2**20:.2f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def speed_table(name: str) -> str:
    """README's "Speed": ms per step, the ratio, the fraction of the peak and the memory, from benchmarks-cpu."""
    rows = ["| model | batch | scratch ms | torch ms | ratio | scratch % peak | torch % peak | scratch MiB "
            "| torch MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for p in map(Fields, load("benchmarks-cpu")["report"]["results"]):
        s, t = p.contenders.scratch, p.contenders.torch
        rows.append(f"| {p.model} | {p.batch_size} | {ms(s.step_s)} | {ms(t.step_s)} | {p.ratio:.2f} | "
                    f"{s.peak_fraction:.0%} | {t.peak_fraction:.0%} | {mib(p, 'scratch')} | {mib(p, 'torch')} |")
    return "\n".join(rows)


def faster(p: Fields) -> str:
    """Whether scratch beat torch eager at this grid point."""
    return "faster than" if p.ratio < 1 else "not faster than"


def compile_verdict(p: Fields) -> str:
    """Whether torch.compile beat eager torch at this grid point."""
    return "does not help" if step(p, "compile") >= step(p, "torch") else "is faster than eager"


def ratios(r: Fields) -> str:
    """The grid's ratios scratch/torch, model by model: '0.53, 0.55, 0.75 (784-16-16-10), ...'."""
    models = list(dict.fromkeys(p["model"] for p in r.results))
    return "; ".join(", ".join(f"{p['ratio']:.2f}" for p in r.results if p["model"] == m) + f" ({m})"
                     for m in models)


def gflops_range(r: Fields) -> str:
    """The range of the float32 1024x1024 product's GFLOP/s that a bench run timed beside its steps."""
    values = [p["matmul_gflops"] for p in r.results]
    return f"{min(values):.0f}-{max(values):.0f}"


def relative(x: float) -> str:
    """A relative difference: 0, or 2.1e-7."""
    return sci(x) if x else "0"


def agreement_words(r: Fields) -> str:
    a = r.agreement
    failed = [f"{p['model']} batch {p['batch_size']}" for p in a.points if not p["passed"]]
    return "passed at every point" if a.passed else f"FAILED at {', '.join(failed)}"


def families_table(name: str) -> str:
    """Each family's grid point: scratch/torch before the work on speed and now, today's step times; `name` is
    "families" (every one) or "families-<model name's first word>" (one family's rows)."""
    before, after = (Fields(load(run)["report"]) for run in ("families-bench-before", "families-bench"))
    wanted = FAMILY_ROWS.get(name, ("",))
    rows = ["| model | batch | before: scratch / torch | now: scratch | torch | scratch / torch |", "|---" * 6 + "|"]
    for p in after.results:
        if not p["model"].lower().startswith(wanted):
            continue
        old = point(before, p["model"], p["batch_size"])
        rows.append(f"| {p['model']} | {p['batch_size']} | {old.ratio:.2f} | {ms(p['scratch_step_s'])} ms | "
                    f"{ms(p['torch_step_s'])} ms | **{p['ratio']:.2f}** |")
    return "\n".join(rows)


def above_one(r: Fields) -> str:
    """Where scratch/torch is above 1.0 in a bench report, in words: 'nowhere' or 'lstm h128 at batch 32 (1.12)'."""
    above = [f"{p['model']} at batch {p['batch_size']} ({p['ratio']:.2f})" for p in r.results if p["ratio"] > 1]
    return ", ".join(above) if above else "nowhere"


FAMILY_ROWS = {"families-cnn": ("lenet-5", "cnn"), "families-vit": ("vit",), "families-lstm": ("lstm",)}
TABLES = {"speed": speed_table, "families": families_table, **dict.fromkeys(FAMILY_ROWS, families_table)}
NAMES = {"above_one": above_one, "point": point, "lesson": lesson, "biggest": biggest, "step": step, "mib": mib,
         "ms": ms, "ratios": ratios,
         "compile_verdict": compile_verdict, "faster": faster, "gflops_range": gflops_range, "relative": relative,
         "agreement_words": agreement_words}
