"""The reconstruction benchmark behind ``precisionrecon bench``, as a library.

- :mod:`~precisionrecon.bench.tasks`: the built-in CT and MR tasks (operators, held-out
  phantoms or real images, simulated data) and the suites;
- :mod:`~precisionrecon.bench.real`: the real suite's test images (pydicom's bundled CT
  and MR slices), checked, scaled, cropped and area-resampled;
- :mod:`~precisionrecon.bench.harness`: the methods, their tuning on validation images,
  scoring, and :func:`run_bench`;
- :mod:`~precisionrecon.bench.report`: the markdown table, the figure and the JSON record;
- :mod:`~precisionrecon.bench.environment`: machine, versions and kernels, for every
  recorded result (also ``precisionrecon info``).

Example::

    from precisionrecon import bench
    A = bench.task_operator("sparse-view-30", 64)            # the task's XRayTransform
    result = bench.run_bench("quick", ["sparse-view-30"], ["FBP", "TV"])
    print(bench.results_table(result.cells, result.methods, result.tasks))
"""

from .environment import environment, format_ms, info, kernel_info, load_average, machine_info
from .harness import (
    CT_METHODS,
    DATA_RANGE,
    LEARNED,
    METHODS,
    MR_METHODS,
    BenchResult,
    evaluate_method,
    load_learned,
    max_abs_error,
    methods_of,
    model_operator,
    run_analytic,
    run_bench,
    score,
    select_jobs,
)
from .real import REAL_IMAGES, RealImage, RealImageError, area_resample, check_image_dataset, real_images, square_crop
from .report import (
    bench_markdown,
    bench_record,
    figure,
    format_seconds,
    png_bytes,
    results_table,
    test_images_text,
    write_report,
)
from .tasks import (
    CT_NOISE,
    CT_TASKS,
    MR_ACCELERATION,
    MR_NOISE,
    MR_TASKS,
    REAL_FINE_FACTOR,
    SUITES,
    TASKS,
    Suite,
    TaskData,
    build_task,
    task_modality,
    task_operator,
    tuning_set,
)

__all__ = [
    "CT_METHODS",
    "CT_NOISE",
    "CT_TASKS",
    "DATA_RANGE",
    "LEARNED",
    "METHODS",
    "MR_ACCELERATION",
    "MR_METHODS",
    "MR_NOISE",
    "MR_TASKS",
    "REAL_FINE_FACTOR",
    "REAL_IMAGES",
    "SUITES",
    "TASKS",
    "BenchResult",
    "RealImage",
    "RealImageError",
    "Suite",
    "TaskData",
    "area_resample",
    "bench_markdown",
    "bench_record",
    "build_task",
    "check_image_dataset",
    "environment",
    "evaluate_method",
    "figure",
    "format_ms",
    "format_seconds",
    "info",
    "kernel_info",
    "load_average",
    "load_learned",
    "machine_info",
    "max_abs_error",
    "methods_of",
    "model_operator",
    "png_bytes",
    "real_images",
    "results_table",
    "run_analytic",
    "run_bench",
    "score",
    "select_jobs",
    "square_crop",
    "task_modality",
    "task_operator",
    "test_images_text",
    "tuning_set",
    "write_report",
]
