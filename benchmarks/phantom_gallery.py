"""Gallery of the procedural anatomy-like phantoms, with a real CT slice for comparison.

Writes ``benchmarks/results/phantoms/gallery.png``: 8 body (thorax/abdomen) and 8 head
phantoms at 128 x 128 (a 320 mm field of view, seeds 0-7, ``units="unit"``, i.e. the window
[-1000, 2000] HU), orthogonal slices (axial, coronal, sagittal) of a 3-D body and head
phantom at 64^3, the real slice ``CT_small.dcm`` shipped with pydicom in the same window,
and random ellipses of the kind the shipped models were trained on. Every title gives the
mean pixel value of the image and, after "body", the mean over pixels above 0.2 (inside
the body). Also prints the CPU time per image (median of 20, one thread).

Run: ``PYTHONPATH=. python benchmarks/phantom_gallery.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

import precisionrecon as pr
from precisionrecon.data import anatomy_phantom, random_ellipse_images

OUT = Path(__file__).resolve().parent / "results" / "phantoms"


def _title(x: torch.Tensor, name: str) -> str:
    inside = x > 0.2
    body = float(x[inside].mean()) if inside.any() else 0.0
    return f"{name}\nmean {float(x.mean()):.2f}, body {body:.2f}"


def _show(ax: plt.Axes, x: torch.Tensor, title: str) -> None:
    ax.imshow(x.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def timings() -> dict[str, float]:
    """Median CPU time (ms) per image of each size and kind (CPU time, not wall time: this
    machine is shared, and the wall time there measures the neighbours too)."""
    out = {}
    for n in (64, 128):
        volume = pr.Volume((n, n), spacing=320 / n)
        anatomy_phantom(volume, seed=0)  # warm-up
        for kind in ("body", "head"):
            times = []
            for seed in range(20):
                t0 = time.process_time()
                anatomy_phantom(volume, seed=seed, kind=kind)
                times.append(time.process_time() - t0)
            out[f"{n}x{n} {kind}"] = 1e3 * float(np.median(times))
    return out


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    volume = pr.Volume((128, 128), spacing=2.5)
    fig, axes = plt.subplots(4, 8, figsize=(16, 9.6))
    for i in range(8):
        _show(axes[0, i], x := anatomy_phantom(volume, seed=i, kind="body"), _title(x, f"body, seed {i}"))
        _show(axes[1, i], x := anatomy_phantom(volume, seed=i, kind="head"), _title(x, f"head, seed {i}"))
    vol3 = pr.Volume((64, 64, 64), spacing=5.0)
    for row, kind, seed in ((2, "body", 1), (3, "head", 2)):
        x = anatomy_phantom(vol3, seed=seed, kind=kind)
        for j, (name, s) in enumerate((("axial", x[32]), ("coronal", x[:, 32]), ("sagittal", x[:, :, 32]))):
            _show(axes[row, j], s, _title(s, f"3-D {kind} {seed}, {name}"))
        for j in range(3, 8):
            axes[row, j].axis("off")
    import pydicom.data

    real = pr.data.read_dicom_ct(pydicom.data.get_testdata_file("CT_small.dcm"), hounsfield=True)
    real_unit = ((real.image.double() + 1000) / 3000).clamp(0, 1)
    _show(axes[2, 4], real_unit, _title(real_unit, "real CT (CT_small.dcm)"))
    ellipses = random_ellipse_images(volume, 2, seed=0)
    for j in range(2):
        _show(axes[3, 4 + j], ellipses[j].clamp(0, 1), _title(ellipses[j], "random ellipses"))
    for j in range(5, 8):
        axes[2, j].axis("off")
    times = timings()
    text = "CPU time per image (median of 20, 1 thread, oversample 2): " + ", ".join(
        f"{k} {v:.1f} ms" for k, v in times.items()
    )
    legend = "window [-1000, 2000] HU -> [0, 1] (water 1/3); 'body' = mean over pixels > 0.2"
    fig.text(0.5, 0.01, f"{text}\n{legend}", ha="center", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(OUT / "gallery.png", dpi=80)
    print(text)


if __name__ == "__main__":
    main()
