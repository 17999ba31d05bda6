"""Benchmark of training steps of the unrolled models: learned primal-dual (LPD) and the
variational network (VN), on CT and MR, at 64² and 128².

What is measured
----------------
Wall-clock time of one training step (forward, mean-squared-error loss, backward, Adam
step) at batch 2 on the CPU, float32, for

* ``LearnedPrimalDual`` (10 iterations, 5 + 5 memory channels, 32-channel 3x3 CNNs) and
  ``VariationalNetwork`` (10 steps, 24 filters 11x11, 31 RBFs), with the default settings;
* CT: the ``low-dose`` task operator (parallel beam, 180 views, 1 mm detector covering the
  diagonal); MR: the ``mr-4x`` task operator (SENSE with 12 birdcage coils, 4x equispaced
  lines), both from :func:`precisionrecon.bench.tasks.task_operator`;

in two ways:

* **before/after, one process each** (the default): the library as it was at git revision
  ``REF`` (``--before``; a temporary detached worktree of it, with this checkout's compiled
  kernel library) against this checkout, each in a fresh Python process running this
  script with ``--child`` and ``PYTHONPATH`` set to the version's root, so that
  everything that changed (model files, operators, and process-wide settings such as the
  allocator's, :func:`precisionrecon.models.allocator.retain_freed_memory`) is really the
  old or the new code. The processes alternate (before, after, before, ...) for
  ``--repeats`` rounds; each builds the model (same seed, same weights), runs one untimed
  warm-up step with the default threads, then times one step with the default threads
  (``default``) and one with one thread (``1 thread``). Median over the rounds; the
  process CPU time of the steps is recorded too (less sensitive to other jobs than wall time).
* ``--variants``: in one process, interleaved run by run (one untimed warm-up step each),
  median of ``--repeats`` steps:

  * ``default``: the model as shipped, ``torch.get_num_threads()`` threads;
  * ``1 thread``: the same with one thread (what a data-parallel run per core would see);
  * ``channels_last, 1 thread``: the model converted with
    ``to(memory_format=torch.channels_last)`` (the 2-D convolutions' NHWC layout; inputs stay
    as the model makes them), one thread;
  * ``compiled, 1 thread``: the CNN blocks compiled with
    :func:`precisionrecon.models.compile_blocks` (``torch.compile``, inductor; the known
    operators stay as they are), one thread. Its warm-up step includes the compilation,
    reported separately (inductor's on-disk cache makes later processes compile faster);
    dynamo's caches are reset before each case, as in a fresh training process;
  * ``compiled + channels_last, 1 thread``: both.

Profile: with ``--profile`` the default variant of each case also runs under
``torch.profiler`` and the five most expensive operators (self CPU time) are listed.

Outputs (written atomically): ``<out>/training.json`` and ``<out>/training.md``.

Usage::

    python benchmarks/training.py                 # 64² and 128², 5 rounds, before/after processes
    python benchmarks/training.py --sizes 64 --variants --profile   # in-process variants
    python benchmarks/training.py --quick --out /tmp/x
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from projectors import busy_warning, time_interleaved, write_atomic

import precisionrecon as pr
from precisionrecon.bench import format_ms, load_average, machine_info
from precisionrecon.bench.tasks import MR_TASKS, task_operator
from precisionrecon.models import base as model_base

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
MODEL_FILES = {"LPD": "primal_dual.py", "VN": "varnet.py"}
BATCH = 2
TASKS = {"CT": "low-dose", "MR": "mr-4x"}
MODELS = ("LPD", "VN")


def build_model(kind: str, A: pr.LinearOperator, quick: bool, module: Any = pr.models) -> torch.nn.Module:
    """The model with its default architecture (``quick``: 2 iterations), from the classes of
    ``module`` (default: the installed ones)."""
    n_iter = 2 if quick else 10
    if kind == "LPD":
        return module.LearnedPrimalDual(A, n_iter=n_iter)
    return module.VariationalNetwork(A, n_steps=n_iter)


def git(*args: str) -> str:
    """The output of a git command in the repository."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def model_module_at(ref: str, kind: str) -> types.ModuleType | None:
    """The model's own file (``primal_dual.py`` / ``varnet.py``) as it was at git revision
    ``ref``, loaded beside the installed package (its imports of blocks, base and operators
    are today's); None when the file is unchanged since ``ref``."""
    path = f"precisionrecon/models/{MODEL_FILES[kind]}"
    source = git("show", f"{ref}:{path}")
    if source == (ROOT / path).read_text():
        return None
    module = types.ModuleType(f"precisionrecon.models._before_{kind}")
    module.__package__ = "precisionrecon.models"
    registered = dict(model_base._REGISTRY)
    try:
        exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)
    finally:  # the old classes must not replace today's in the registry of build()
        model_base._REGISTRY.clear()
        model_base._REGISTRY.update(registered)
    return module


def training_step(model: torch.nn.Module, y: torch.Tensor, x: torch.Tensor, threads: int) -> Callable[[], Any]:
    """One Adam step on the mean-squared error, with ``threads`` torch threads."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            opt.zero_grad(set_to_none=True)
            out = model(y)
            loss = (out - x).abs().pow(2).mean()
            loss.backward()
            opt.step()
            return float(loss.detach())
        finally:
            torch.set_num_threads(old)

    return step


def case_data(task: str, n: int) -> tuple[pr.LinearOperator, torch.Tensor, torch.Tensor]:
    """Operator, data ``A x`` and ground truth ``x`` (batch of smooth random images)."""
    A = task_operator(task, n)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(BATCH, 1, n, n, generator=g), 5, 1, 2)[:, 0]
    if task in MR_TASKS:  # MR images are complex
        x = x.to(torch.complex64)
    with torch.no_grad():
        y = A(x)
    return A, y, x


def profile_top(step: Callable[[], Any], k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` operators with the largest self CPU time over one step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total}
            for e in events]


def run_case(kind: str, modality: str, n: int, repeats: int, threads: int, quick: bool,
             profile: bool, before_ref: str | None) -> dict[str, Any]:
    A, y, x = case_data(TASKS[modality], n)
    torch.manual_seed(0)
    base = build_model(kind, A, quick)
    old_module = None if before_ref is None else model_module_at(before_ref, kind)
    before: dict[str, Callable[[], Any]] = {}
    if old_module is not None:
        old = build_model(kind, A, quick, old_module)
        old.load_state_dict(base.state_dict())
        before = {f"before ({before_ref})": training_step(old, y, x, threads),
                  f"before ({before_ref}), 1 thread": training_step(old, y, x, 1)}
    last = build_model(kind, A, quick)
    last.load_state_dict(base.state_dict())
    last = last.to(memory_format=torch.channels_last)
    torch._dynamo.reset()  # each case compiles as a fresh process would (no recompile limit across cases)
    compiled = build_model(kind, A, quick)
    compiled.load_state_dict(base.state_dict())
    pr.models.compile_blocks(compiled)
    compiled_last = build_model(kind, A, quick)
    compiled_last.load_state_dict(base.state_dict())
    compiled_last = compiled_last.to(memory_format=torch.channels_last)
    pr.models.compile_blocks(compiled_last)
    variants = {
        **before,
        "default": training_step(base, y, x, threads),
        "1 thread": training_step(base, y, x, 1),
        "channels_last, 1 thread": training_step(last, y, x, 1),
        "compiled, 1 thread": training_step(compiled, y, x, 1),
        "compiled + channels_last, 1 thread": training_step(compiled_last, y, x, 1),
    }
    timing = time_interleaved(variants, repeats)
    row: dict[str, Any] = {"model": kind, "modality": modality, "task": TASKS[modality], "n": n, "batch": BATCH,
                           "threads": threads, "before_ref": before_ref if before else None, "time": timing}
    if profile:
        row["profile"] = profile_top(variants["default"])
    ms = {k: v["median_ms"] for k, v in timing.items()}
    print(f"  {kind:3s} {modality} {n:4d}²  " + "  ".join(f"{k} {format_ms(v)} ms" for k, v in ms.items()),
          flush=True)
    return row


CHILD_TAG = "TRAINING_CHILD_RESULT "


def child_main(kind: str, modality: str, n: int, quick: bool) -> int:
    """``--child``: time one default-thread and one one-thread step of a fresh model in this
    process (after one untimed warm-up step) and print them as one JSON line."""
    A, y, x = case_data(TASKS[modality], n)
    torch.manual_seed(0)
    model = build_model(kind, A, quick)
    threads = torch.get_num_threads()
    steps = {"default": training_step(model, y, x, threads), "1 thread": training_step(model, y, x, 1)}
    steps["default"]()  # warm-up: allocations, oneDNN primitives, ||A 1||
    out: dict[str, Any] = {"package": pr.__file__, "threads": threads}
    for name, step in steps.items():
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        out[name] = {"ms": (time.perf_counter() - wall) * 1e3, "cpu_ms": (time.process_time() - cpu) * 1e3}
    print(CHILD_TAG + json.dumps(out), flush=True)
    return 0


def before_checkout(ref: str) -> tuple[Path, Callable[[], None]]:
    """A temporary detached worktree of ``ref`` with this checkout's compiled kernel library
    (gitignored, so not in the worktree) and this script (whose ``--child`` runs there, with
    that worktree's ``projectors.py``, which puts its own root first on ``sys.path``);
    returns its root and the function that removes it."""
    tmp = Path(tempfile.mkdtemp(prefix="training-before-"))
    root = tmp / "src"
    git("worktree", "add", "--detach", str(root), ref)
    lib = ROOT / "precisionrecon" / "_kernels" / "lib"
    if lib.is_dir():
        shutil.copytree(lib, root / "precisionrecon" / "_kernels" / "lib", dirs_exist_ok=True)
    shutil.copy2(Path(__file__).resolve(), root / "benchmarks" / "training.py")

    def remove() -> None:
        subprocess.run(["git", "worktree", "remove", "--force", str(root)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    return root, remove


def run_child(root: Path, kind: str, modality: str, n: int, quick: bool) -> dict[str, Any]:
    """The result of :func:`child_main` run in a fresh process on the package at ``root``."""
    cmd = [sys.executable, str(root / "benchmarks" / "training.py"), "--child", kind, modality, str(n)]
    cmd += ["--quick"] if quick else []
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(CHILD_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {cmd} on {root} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(CHILD_TAG) :])
    if not Path(result["package"]).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"the child imported {result['package']}, not the package at {root}")
    return result


def process_case(kind: str, modality: str, n: int, repeats: int, quick: bool,
                 versions: dict[str, Path]) -> dict[str, Any]:
    """Before/after in alternating fresh processes (module docstring), median of ``repeats`` rounds."""
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        for label, root in versions.items():
            res = run_child(root, kind, modality, n, quick)
            for variant in ("default", "1 thread"):
                name = variant if label == "after" else (label if variant == "default" else f"{label}, {variant}")
                entry = samples.setdefault(name, {"ms": [], "cpu_ms": []})
                entry["ms"].append(res[variant]["ms"])
                entry["cpu_ms"].append(res[variant]["cpu_ms"])
    order = [k for k in samples if k.startswith("before")] + ["default", "1 thread"]
    timing = {k: {"median_ms": statistics.median(samples[k]["ms"]),
                  "cpu_median_ms": statistics.median(samples[k]["cpu_ms"]),
                  "samples_ms": samples[k]["ms"], "cpu_samples_ms": samples[k]["cpu_ms"]} for k in order}
    before = next((k for k in versions if k != "after"), None)
    row: dict[str, Any] = {"model": kind, "modality": modality, "task": TASKS[modality], "n": n, "batch": BATCH,
                           "mode": "processes", "before_ref": before[len("before (") : -1] if before else None,
                           "time": timing}
    cells = [f"{k} {format_ms(v['median_ms'])} ms (cpu {format_ms(v['cpu_median_ms'])})" for k, v in timing.items()]
    print(f"  {kind:3s} {modality} {n:4d}²  " + "  ".join(cells), flush=True)
    return row


def markdown_report(meta: dict[str, Any], rows: list[dict[str, Any]], notes: list[str]) -> str:
    m = meta["machine"]
    lines = [
        "# Training steps: LPD and VN, CT and MR (CPU)",
        "",
        f"{meta['date']} · {m['cpu_model']} · {m['cpu_count']} cores ({m['cpus_usable']} usable) · "
        f"torch {m['torch']} · kernel ISA {m['kernel_isa']}"
        + (" · **quick run: not representative**" if meta["quick"] else ""),
        "",
        f"One Adam step (forward, MSE, backward) at batch {BATCH}, float32; steps per second = 1000 / ms.",
        "",
        *(
            [f"Before/after in separate processes (`before ({meta['before']})`: the library at that revision, in a "
             "temporary worktree; the others: this checkout), alternating process by process; each process builds the "
             "model, runs one untimed warm-up step, then times one step with the default threads "
             f"({meta['threads']}) and one with 1 thread. Median of {meta['repeats']} rounds. CPU ms: process CPU time "
             "of the step (all threads). Speed-up = before time / time (wall; the 1-thread rows against the "
             "1-thread before).", ""]
            if meta.get("mode") == "processes" else
            [f"In one process, median of {meta['repeats']} interleaved steps after one warm-up each. Default: "
             f"{meta['threads']} threads. `before ({meta['before']})`: the model's own file (`primal_dual.py`, "
             "`varnet.py`) as it was at that revision, default threads, timed only where it differs (else it is "
             "`default`). Speed-up = before time / variant time (same run, interleaved).", ""]
        ),
        "| model | data | n | variant | ms | CPU ms | steps/s | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = {k: v["median_ms"] for k, v in r["time"].items()}
        cpu = {k: v.get("cpu_median_ms") for k, v in r["time"].items()}
        before = f"before ({r['before_ref']})" if r.get("before_ref") else None
        for name, ms in t.items():
            ref = t["default"] if before is None else t[before]
            if r.get("mode") == "processes" and before is not None and "1 thread" in name:
                ref = t[f"{before}, 1 thread"]
            lines.append(
                f"| {r['model']} | {r['modality']} ({r['task']}) | {r['n']}² | {name} | {format_ms(ms)} "
                f"| {format_ms(cpu[name]) if cpu[name] is not None else '-'} | {1e3 / ms:.2f} | {ref / ms:.2f}x |"
            )
    compiled = [r for r in rows if "compiled, 1 thread" in r["time"]]
    if compiled:
        lines += ["", "Compilation (the compiled variant's warm-up step minus its median step):", ""]
    for r in compiled:
        c = r["time"]["compiled, 1 thread"]
        lines.append(f"- {r['model']} {r['modality']} {r['n']}²: {(c['warmup_ms'] - c['median_ms']) / 1e3:.0f} s")
    profiled = [r for r in rows if "profile" in r]
    if profiled:
        lines += ["", "## Profile (default variant, self CPU time of one step)", ""]
        for r in profiled:
            top = ", ".join(f"{p['op']} {p['share']:.0%}" for p in r["profile"])
            lines.append(f"- {r['model']} {r['modality']} {r['n']}²: {top}")
    lines += ["", "## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="image sizes (default 64 128)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per variant (default 5)")
    p.add_argument("--profile", action="store_true", help="profile the default variant of each case (--variants)")
    p.add_argument("--variants", action="store_true",
                   help="time the in-process variants (threads, channels_last, compiled), not before/after processes")
    p.add_argument("--child", nargs=3, metavar=("MODEL", "DATA", "N"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="32², 2 iterations, 1 repeat (smoke test)")
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--before", default=None, metavar="REF",
                   help="git revision whose model files are timed as 'before' where they differ (default: where "
                        "this branch left main, git merge-base HEAD main; '' for none)")
    args = p.parse_args(argv)
    if args.child is not None:
        return args
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.quick:
        args.sizes, args.repeats = [32], 1
    if args.out is None:
        args.out = DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    if args.before is None:
        args.before = git("merge-base", "HEAD", "main").strip()[:10]
    args.before = args.before or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        kind, modality, n = args.child
        return child_main(kind, modality, int(n), args.quick)
    if args.profile and not args.variants:
        raise SystemExit("--profile needs --variants")
    threads = torch.get_num_threads()
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "threads": threads,
        "sizes": args.sizes,
        "repeats": args.repeats,
        "before": args.before,
        "mode": "variants" if args.variants else "processes",
        "machine": machine_info(),
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
    }
    m = meta["machine"]
    busy = busy_warning(m["loadavg_at_start"], m["cpus_usable"] or m["cpu_count"])
    if busy:
        print(f"  WARNING: {busy}", flush=True)
    cases = [(kind, modality, n) for n in args.sizes for modality in TASKS for kind in MODELS]
    if args.variants:
        rows = [run_case(kind, modality, n, args.repeats, threads, args.quick, args.profile, args.before)
                for kind, modality, n in cases]
    else:
        versions: dict[str, Path] = {}
        remove: Callable[[], None] = lambda: None  # noqa: E731
        if args.before is not None:
            before_root, remove = before_checkout(args.before)
            versions[f"before ({args.before})"] = before_root
        versions["after"] = ROOT
        try:
            rows = [process_case(kind, modality, n, args.repeats, args.quick, versions) for kind, modality, n in cases]
        finally:
            remove()
    m["loadavg_at_end"] = load_average()
    notes = [
        f"Load average (1, 5, 15 min) at start {m['loadavg_at_start']}, at end {m['loadavg_at_end']}: the machine is "
        "shared (a low-priority training job and other engineers' tests ran concurrently); ratios of interleaved "
        "variants are more reliable than absolute times.",
        *([f"**{busy}**"] if busy else []),
    ]
    payload = {"metadata": meta, "notes": notes, "rows": rows}
    write_atomic(args.out / "training.json", json.dumps(payload, indent=2) + "\n")
    write_atomic(args.out / "training.md", markdown_report(meta, rows, notes))
    print(f"wrote {args.out / 'training.json'}, {args.out / 'training.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
