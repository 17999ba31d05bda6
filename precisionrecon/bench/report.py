"""The benchmark's outputs: the markdown table, the figure, the JSON record and the
provenance of the pretrained weights."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import pretrained
from .._io import atomic_write_bytes, atomic_write_text
from ..geometry import to_dict
from ..operators import LinearOperator
from .environment import environment
from .harness import DATA_RANGE, LEARNED, BenchResult, Cell
from .tasks import DESCRIPTIONS, REAL_FINE_FACTOR, Suite, TaskData, tuning_set


def format_seconds(s: float) -> str:
    """A time per image for the table: ``0.77 ms``, ``12 ms``, ``138 ms``, ``1.25 s``."""
    if s < 0.1:
        return f"{s * 1000:.2g} ms"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def results_table(cells: Mapping[str, Mapping[str, Cell]], methods: Sequence[str], tasks: Sequence[str]) -> str:
    """Markdown table methods x tasks, each cell ``PSNR / SSIM / max |error| / time`` (``-``:
    not applicable; otherwise the reason the method did not run)."""
    lines = ["| method | " + " | ".join(tasks) + " |", "|" + " --- |" * (len(tasks) + 1)]
    for m in methods:
        row = []
        for t in tasks:
            c = cells.get(t, {}).get(m)
            if c is None:
                row.append("-")
            elif c["status"] != "ok":
                row.append(c["status"])
            else:
                row.append(f"{c['psnr']:.2f} / {c['ssim']:.3f} / {c['max_abs_error']:.2f} / "
                           f"{format_seconds(c['seconds_per_image'])}")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def png_bytes(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (80 dpi, tight box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def figure(tasks: Sequence[TaskData], cells: Mapping[str, Mapping[str, Cell]], methods: Sequence[str]) -> bytes:
    """PNG: per task a row of reconstructions (truth first), a row of |error| maps and,
    when a method gives one, a row of its std maps; image 0 of each task (Shepp-Logan, or
    the first real file, named in the truth's title).

    Needs matplotlib (an optional dependency: ``ImportError`` without it).
    """
    import matplotlib  # optional dependency, only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, str, list[tuple[str, Tensor | None]]]] = []
    for task in tasks:
        task_cells = cells[task.name]
        ran = [m for m in methods if task_cells.get(m, {}).get("status") == "ok"]
        truth = task.truth[0].detach().cpu().abs()
        label = f"truth ({task.test_images[0]})" if task.test_images else "truth"
        rows.append((task.name, "image", [(label, truth)] + [(m, task_cells[m]["image"].abs()) for m in ran]))
        rows.append((task.name, "|error|",
                     [("", None)] + [(m, (task_cells[m]["image"].abs() - truth).abs()) for m in ran]))
        if any("std" in task_cells[m] for m in ran):
            rows.append((task.name, "std", [("", None)] + [(m, task_cells[m].get("std")) for m in ran]))
    if not rows:
        raise ValueError("figure: no task to draw")
    ncols = max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.9 * ncols, 1.9 * len(rows)), squeeze=False)
    for i, (task_name, kind, panels) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(panels) or panels[j][1] is None:
                continue
            title, img = panels[j]
            vmax = 1.0 if kind == "image" else (0.25 if kind == "|error|" else None)
            ax.imshow(img.float().numpy(), cmap="gray" if kind == "image" else "magma", vmin=0, vmax=vmax)
            ax.set_title(f"{title}" if kind == "image" else f"{title} {kind}", fontsize=7)
            if j == 0:
                ax.text(-0.1, 0.5, task_name, transform=ax.transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    fig.tight_layout()
    data = png_bytes(fig)
    plt.close(fig)
    return data


def provenance(tasks: Sequence[str], methods: Sequence[str]) -> list[str]:
    """One markdown line per pretrained model used: its steps, batch, seed, training time and command."""
    lines = []
    for t in tasks:
        for m in methods:
            if m not in LEARNED:
                continue
            folder = pretrained.find(t, m)
            record = folder / "train_result.json" if folder is not None else None
            if record is None or not record.is_file():
                continue
            r = json.loads(record.read_text())
            line = f"- `{t}` / {m}: {_budget(r)}"
            base = r.get("base")
            if isinstance(base, dict):  # fine-tuned from a base run
                line += f", fine-tuned from `{r.get('init_weights')}` ({_budget(base)})"
            lines.append(f"{line}; `{r.get('command')}`")
    return lines


def _budget(r: dict[str, Any]) -> str:
    """Steps, batch, seed and wall time of a ``train_result.json`` record."""
    devices = r.get("devices") or ["cpu"]
    where = "/".join(str(d).upper() for d in devices)
    return (f"{r.get('steps')} steps of batch {r.get('batch_size')}, seed {r.get('seed')}, "
            f"{r.get('wall_s')} s on {where}")


def operator_record(A: LinearOperator) -> dict[str, Any]:
    """An operator as JSON: volume and geometry (``geometry.to_dict``) of X-ray transforms,
    else its type and shapes."""
    geom = getattr(A, "geometry", None)
    if geom is None:
        return {"type": type(A).__name__, "domain_shape": list(A.domain_shape), "range_shape": list(A.range_shape)}
    return {"volume": to_dict(A.volume), "geometry": to_dict(geom)}


def test_images_text(suite: Suite) -> str:
    """What the test images of ``suite`` are and how their data were made, one sentence."""
    if suite.images == "real":
        return ("real CT/MR slices bundled with pydicom (precisionrecon.bench.real), cropped square and "
                f"area-resampled; CT data projected at {REAL_FINE_FACTOR}x the grid and detector resolution and "
                "binned, MR k-space of the task-size image")
    return "modified Shepp-Logan + held-out random ellipses (Adler & Oktem), exact analytic data"


def bench_record(result: BenchResult) -> dict[str, Any]:
    """The JSON record of a run (``bench.json``): sizes, seeds, environment, what the test
    images are and what tuning saw, per task its description, noise, operator, test images
    and cells (without the images)."""
    data = result.task_data
    return {
        "suite": result.suite_name,
        "sizes": dataclasses.asdict(result.suite),
        "seed": result.seed,
        "data_range": DATA_RANGE,
        "metrics": "PSNR, SSIM and maximal absolute error per image against the test image (MR: magnitudes); "
                   "PSNR/SSIM: mean over the batch, max_abs_error: the largest",
        "test_images": test_images_text(result.suite),
        "tuned_on": tuning_set(result.suite),
        "wall_s": result.wall_s,
        "environment": environment(result.device),
        "tasks": {
            t: {
                "description": data[t].description if t in data else DESCRIPTIONS[t],
                "noise": data[t].noise if t in data else {},
                "operator": operator_record(data[t].operator) if t in data else None,
                "test_images": data[t].test_images if t in data else [],
                "skipped_images": data[t].skipped if t in data else [],
                "methods": {m: {k: v for k, v in c.items() if k not in ("image", "std")}
                            for m, c in result.cells[t].items()},
            }
            for t in result.tasks
        },
    }


def bench_markdown(result: BenchResult, record: Mapping[str, Any] | None = None) -> str:
    """``bench.md``: the table with its caption, the tasks, the provenance of the pretrained
    weights and the machine (``record``: :func:`bench_record` of ``result``, if already made)."""
    record = bench_record(result) if record is None else record
    suite, env = result.suite, record["environment"]
    if suite.images == "real":
        images = "the real test images of each task (below)"
    else:
        images = f"{suite.n_ellipses + 1} test images (Shepp-Logan + held-out ellipses)"
    md = [f"# precisionrecon bench ({result.suite_name} suite)", "",
          f"PSNR (dB) / SSIM (data range {DATA_RANGE}; MR: magnitudes) / maximal absolute error / time per "
          f"image; PSNR and SSIM are the mean, the maximal error the largest over {images}, "
          f"{suite.n}x{suite.n} pixels. Learned methods use the pretrained weights "
          "(`precisionrecon/pretrained/`), LPD with its heteroscedastic head's predicted standard deviation "
          "(the std maps of the figure).", "",
          f"Test images: {record['test_images']}.", "",
          f"Tuned on: {record['tuned_on']} (FBP windows, iteration counts and TV weights).", "",
          results_table(result.cells, result.methods, result.tasks), "", "Tasks:", ""]
    for t in result.tasks:
        line = f"- `{t}`: {record['tasks'][t]['description']}"
        if suite.images == "real" and record["tasks"][t]["test_images"]:
            line += "; test images " + ", ".join(f"`{f}`" for f in record["tasks"][t]["test_images"])
        md.append(line)
    skipped = sorted({s for t in result.tasks for s in record["tasks"][t]["skipped_images"]})
    if skipped:
        md += ["", "Real files not used:", ""] + [f"- {s}" for s in skipped]
    lines = provenance(result.tasks, result.methods)
    if lines:
        md += ["", "Pretrained weights (trained by `precisionrecon train` from the recorded configs):", ""]
        md += lines
    md += ["", f"Machine: {env['cpu']}, {env['threads']} threads, torch {env['torch']}, device {env['device']}; "
           f"total {result.wall_s:.0f} s.", ""]
    return "\n".join(md)


def write_report(result: BenchResult, out: str | Path, *, figure_png: bool = True) -> list[Path]:
    """Write ``bench.json``, ``bench.md`` and (``figure_png``, needs matplotlib) ``bench.png``
    into the folder ``out`` (created), each atomically; returns the paths written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} exists and is not a folder")
    record = bench_record(result)
    written = [atomic_write_text(out / "bench.json", json.dumps(record, indent=1) + "\n"),
               atomic_write_text(out / "bench.md", bench_markdown(result, record))]
    if figure_png:
        drawn = [result.task_data[t] for t in result.tasks if t in result.task_data]
        written.append(atomic_write_bytes(out / "bench.png", figure(drawn, result.cells, result.methods)))
    return written
