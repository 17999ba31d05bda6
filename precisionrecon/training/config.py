"""The training configuration: plain dataclasses that read and write dicts, JSON and YAML."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._validate import check_int, check_threads, choice, finite_float, positive_float
from ._io import atomic_write_bytes, atomic_write_json, read_json

DATA_KINDS = ("auto", "ct", "mr")
NOISE_MODELS = ("gaussian", "poisson", "none")
SCHEDULES = ("cosine", "constant")
LOSSES = ("auto", "mse", "nll")
DTYPES = ("float32", "float64")
PHANTOMS = ("ellipses", "anatomy", "mix")
PHASES = ("smooth", "random")
ANATOMY_KINDS = ("random", "body", "head")


def _from_dict(cls: type, d: Any, where: str) -> dict[str, Any]:
    """The keyword arguments of ``cls`` in ``d``; a ValueError names unknown keys."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a dict, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; valid keys are {sorted(names)}")
    return dict(d)


@dataclass
class DataConfig:
    """Simulated training data, drawn on the fly for the model's operator.

    Attributes
    ----------
    kind : {"auto", "ct", "mr"}
        ``"ct"``: random-ellipse images (Adler & Öktem) projected by the operator;
        ``"mr"``: the same images times a random smooth phase, through the (SENSE or
        NUFFT) operator. ``"auto"``: ``"mr"`` for complex operators, else ``"ct"``.
    noise : {"gaussian", "poisson", "none"}
        ``"gaussian"``: white noise of standard deviation ``noise_level`` times the mean
        ``|y|`` of each item (complex circular for MR; only sampled k-space is noisy);
        ``"poisson"`` (CT): photon counts with ``i0`` incident photons, post-log.
    noise_level : float
        Relative Gaussian standard deviation (0.05: Adler & Öktem's 5 %).
    noise_level_max : float, optional
        Gaussian noise of a random level: each sample's relative level is drawn
        log-uniformly in ``[noise_level, noise_level_max]`` (from the sample's noise seed,
        so a resumed run draws the same). A model trained so does not read noise above its
        training level as structure, e.g. on objects that fill the field of view, whose
        noise relative to their contrast is higher. ``None``: every sample at ``noise_level``.
    i0, mu_scale : float
        Poisson noise, see :func:`precisionrecon.data.poisson_noise`.
    i0_min : float, optional
        Poisson noise of a random dose: ``i0`` of each sample drawn log-uniformly in
        ``[i0_min, i0]``. ``None``: every sample at ``i0``.
    n_ellipses : float
        Mean number of ellipses per image.
    interior : bool
        Ellipse centres in the inner half of the image.
    phase_amplitude : float
        MR: the scale ``a`` of the image phase (see ``phase``).
    phase : {"smooth", "random"}
        MR: the image phase per sample. ``"smooth"``: one fixed pattern,
        ``a * smooth_phase(shape, 1)`` with ``a`` uniform in
        ``[-phase_amplitude, phase_amplitude]`` (the bench's simulated phase).
        ``"random"``: :func:`~precisionrecon.mr.random_phase` with amplitude
        ``phase_amplitude``: a random global phase, quadratic and coil-like phase, as real
        images have after SENSE with estimated maps (normalised to a reference coil).
        Models trained on ``"smooth"`` lean on that one pattern: on the real mr-4x slices
        with NLINV maps the shipped LPD lost 1.1 dB against the true maps, 0.7 dB of it to
        the reference coil's phase.
    train_size : int, optional
        ``None``: a fresh phantom for every sample; ``n``: a fixed set of ``n`` phantoms,
        visited in a new random order every epoch (noise is drawn anew each time).
    val_size : int
        Images in the fixed validation set.
    val_seed : int
        Seed of the validation set (it never overlaps the training phantoms).
    phantom : {"ellipses", "anatomy", "mix"}
        ``"ellipses"``: the random ellipses above; ``"anatomy"``: procedural anatomy-like
        phantoms (:func:`precisionrecon.data.anatomy_phantom`, ``units="unit"``, i.e.
        ``mu / (3 mu_water)``: soft tissue about 0.35); ``"mix"``: each sample is anatomy
        with probability ``anatomy_fraction``, else ellipses.
    anatomy_fraction : float
        ``"mix"`` only: expected share of anatomy phantoms, in [0, 1].
    anatomy_kind : {"random", "body", "head"}
        Which anatomy (``"random"``: body or head per sample).
    zoom_max : float
        Anatomy phantoms magnified in-plane by a factor drawn log-uniformly in ``[1,
        zoom_max]`` about an object point drawn uniformly within ``1 - 1 / zoom`` of the
        body centre (``zoom`` and ``center`` of
        :func:`~precisionrecon.data.anatomy_phantom`), so that the body can fill the field
        of view and cross its border, as a crop of a real slice does. 1: the whole body.
    oversample : int
        Fine-grid factor of the simulation. 1: images on the task grid (ellipses sampled at
        voxel centres, anatomy with 2x2 sub-samples) and ``y = A x``; ``f > 1``, CT: the
        phantom is rendered on a grid ``f`` times finer, projected onto a detector with
        ``f`` times finer cells and binned back (no inverse crime,
        :func:`precisionrecon.data.fine_projection`), and ``x`` is the fine image averaged
        to the task grid; MR: ``x`` with ``f^D`` sub-samples per pixel, ``y = A x``.
    """

    kind: str = "auto"
    noise: str = "gaussian"
    noise_level: float = 0.05
    noise_level_max: float | None = None
    i0: float = 1e4
    i0_min: float | None = None
    mu_scale: float = 1.0
    n_ellipses: float = 50.0
    interior: bool = False
    phase_amplitude: float = math.pi / 2
    phase: str = "smooth"
    train_size: int | None = None
    val_size: int = 8
    val_seed: int = 0
    phantom: str = "ellipses"
    anatomy_fraction: float = 0.5
    anatomy_kind: str = "random"
    zoom_max: float = 1.0
    oversample: int = 1

    def __post_init__(self) -> None:
        choice(self.kind, "data.kind", DATA_KINDS)
        choice(self.noise, "data.noise", NOISE_MODELS)
        self.noise_level = finite_float(self.noise_level, "data.noise_level", minimum=0.0)
        self.i0 = positive_float(self.i0, "data.i0")
        if self.noise_level_max is not None:
            if self.noise != "gaussian":
                raise ValueError(f"data.noise_level_max is for noise 'gaussian', got noise {self.noise!r}")
            self.noise_level_max = positive_float(self.noise_level_max, "data.noise_level_max")
            if not 0 < self.noise_level <= self.noise_level_max:
                raise ValueError(f"data.noise_level_max ({self.noise_level_max}) must be at least data.noise_level "
                                 f"({self.noise_level}), which must be > 0")
        if self.i0_min is not None:
            if self.noise != "poisson":
                raise ValueError(f"data.i0_min is for noise 'poisson', got noise {self.noise!r}")
            self.i0_min = positive_float(self.i0_min, "data.i0_min")
            if self.i0_min > self.i0:
                raise ValueError(f"data.i0_min ({self.i0_min}) must not exceed data.i0 ({self.i0})")
        self.mu_scale = positive_float(self.mu_scale, "data.mu_scale")
        self.n_ellipses = finite_float(self.n_ellipses, "data.n_ellipses", minimum=0.0)
        self.phase_amplitude = finite_float(self.phase_amplitude, "data.phase_amplitude", minimum=0.0)
        choice(self.phase, "data.phase", PHASES)
        if not isinstance(self.interior, bool):
            raise ValueError(f"data.interior must be a bool, got {self.interior!r}")
        if self.train_size is not None:
            check_int(self.train_size, "data.train_size", minimum=1)
        check_int(self.val_size, "data.val_size", minimum=0)
        check_int(self.val_seed, "data.val_seed", minimum=0)
        choice(self.phantom, "data.phantom", PHANTOMS)
        self.anatomy_fraction = finite_float(self.anatomy_fraction, "data.anatomy_fraction", minimum=0.0)
        if self.anatomy_fraction > 1:
            raise ValueError(f"data.anatomy_fraction must be in [0, 1], got {self.anatomy_fraction!r}")
        choice(self.anatomy_kind, "data.anatomy_kind", ANATOMY_KINDS)
        self.zoom_max = finite_float(self.zoom_max, "data.zoom_max", minimum=1.0)
        check_int(self.oversample, "data.oversample", minimum=1)


@dataclass
class TrainingConfig:
    """Everything a training run needs; ``TrainingConfig.from_file("cfg.json")`` /
    ``to_dict()`` round-trip through JSON or YAML.

    Attributes
    ----------
    model : dict, optional
        The model's ``config()`` (built by :func:`precisionrecon.uncertainty.build`, i.e.
        :func:`precisionrecon.models.build` or an uncertainty wrapper). May be omitted
        when a model instance is given to the :class:`~.Trainer`.
    output_dir : str, optional
        Folder of checkpoints and the history; ``None`` writes nothing.
    steps : int
        Optimisation steps in total (a resumed run continues up to this number).
    batch_size : int
        Global batch per step, split evenly over the processes of a distributed run.
    lr, min_lr : float
        Adam's learning rate: ``lr`` after the warm-up, decaying to ``min_lr``.
    schedule : {"cosine", "constant"}
        Cosine decay from ``lr`` to ``min_lr`` over the steps after the warm-up.
    warmup_steps : int
        Linear warm-up from ``lr / warmup_steps`` to ``lr``.
    betas : (float, float)
        Adam's betas (Adler & Öktem: 0.9, 0.99).
    weight_decay : float
        Adam's (L2) weight decay.
    grad_clip : float, optional
        Clip the global gradient norm to this value; ``None`` does not clip.
    loss : {"auto", "mse", "nll"}
        ``"auto"``: Gaussian NLL for models returning ``(mean, log_var)``, else MSE.
    seed : int
        Seeds python, numpy and torch (model initialisation), and every step's data,
        noise and random layers (dropout), so a run is reproducible and a resumed run
        continues identically.
    dtype : {"float32", "float64"}
        Precision of the parameters and the data.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a
        distributed run on CUDA uses ``cuda:LOCAL_RANK``.
    val_every : int
        Validate every that many steps (and at the start and the end); 0: only at the end.
    data_range : float
        The ``data_range`` of PSNR and SSIM (the range the true images take).
    checkpoint_every : int
        Save a checkpoint every that many steps (and at the end); 0: only at the end.
    keep_checkpoints : int
        Newest checkpoints kept on disk (older ones are removed).
    resume : bool or str
        ``True``: continue from the newest checkpoint in ``output_dir`` if there is one
        (else start afresh); a path: continue from that checkpoint.
    init_weights : str, optional
        Fine-tuning: a checkpoint or pretrained-weights folder (``model.safetensors`` and
        ``config.json``, e.g. ``precisionrecon/pretrained/weights/<task>/<method>``) whose
        parameters start the run instead of the random initialisation. Its model config
        must equal this run's. Adam's moments and the schedule start afresh; a resumed run
        takes everything from its checkpoint and does not read this folder again.
    progress : bool
        Show a tqdm progress bar (first process only).
    num_threads : int, optional
        ``torch.set_num_threads`` for this process. A resumed run is bitwise identical to an
        uninterrupted one on the same kind of machine with the same number of threads.
        On a machine busy with other work, 1 is much faster: every parallel region of a
        step waits for its slowest thread (``benchmarks/results/training.md``: 2 threads
        took 9-38x the time of 1 per LPD / VN step on 2 cores at load 3.5).
    compile : bool
        Compile the model's CNN blocks with ``torch.compile``
        (:func:`~precisionrecon.models.compile_blocks`; the known operators stay as they
        are). The first steps compile (seconds to minutes on a small CPU); measured on a
        2-core CPU at 64² (``benchmarks/training.py``, one thread), an LPD step then took
        0.81-0.86x the time, a VN step 1.2-1.3x (slower: leave it off for VN on the
        CPU). Weights and checkpoints are the same as without; the losses agree to float
        rounding.
    max_seconds : float, optional
        Time budget of one :meth:`~.Trainer.fit` call: before each step, the run stops
        (writing a checkpoint, ``Trainer.finished`` False) when that step would end after
        ``max_seconds`` from the start of the call, judged by the mean time of the steps so
        far. ``resume=True`` then continues it. ``None``: no limit.
    deterministic : bool
        On CUDA, use deterministic algorithms (cuDNN, cuBLAS workspace,
        ``torch.use_deterministic_algorithms(True, warn_only=True)``), so that a resumed run
        repeats an uninterrupted one bit for bit. The CPU needs nothing.
    data : DataConfig
    """

    model: dict[str, Any] | None = None
    output_dir: str | None = None
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    min_lr: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    loss: str = "auto"
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    val_every: int = 100
    data_range: float = 1.0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    resume: bool | str = False
    init_weights: str | None = None
    progress: bool = True
    num_threads: int | None = None
    compile: bool = False
    max_seconds: float | None = None
    deterministic: bool = True
    data: DataConfig = field(default_factory=DataConfig)

    # settings a resumed run may change: they do not alter the trained weights
    RESUMABLE_CHANGES: ClassVar[frozenset[str]] = frozenset(
        {"output_dir", "resume", "progress", "num_threads", "compile", "device", "max_seconds", "deterministic",
         "val_every", "checkpoint_every", "keep_checkpoints"}
    )

    def __post_init__(self) -> None:
        if self.model is not None and not isinstance(self.model, dict):
            raise ValueError(f"model must be a model config (dict), got {type(self.model).__name__}")
        if self.output_dir is not None and not isinstance(self.output_dir, (str, Path)):
            raise ValueError(f"output_dir must be a path, got {self.output_dir!r}")
        if self.output_dir is not None:
            self.output_dir = str(self.output_dir)
        check_int(self.steps, "steps", minimum=0)
        check_int(self.batch_size, "batch_size", minimum=1)
        self.lr = positive_float(self.lr, "lr")
        self.min_lr = finite_float(self.min_lr, "min_lr", minimum=0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        choice(self.schedule, "schedule", SCHEDULES)
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        betas = tuple(self.betas) if isinstance(self.betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.weight_decay = finite_float(self.weight_decay, "weight_decay", minimum=0.0)
        if self.grad_clip is not None:
            self.grad_clip = positive_float(self.grad_clip, "grad_clip")
        choice(self.loss, "loss", LOSSES)
        check_int(self.seed, "seed", minimum=0)
        choice(self.dtype, "dtype", DTYPES)
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        check_int(self.val_every, "val_every", minimum=0)
        self.data_range = positive_float(self.data_range, "data_range")
        check_int(self.checkpoint_every, "checkpoint_every", minimum=0)
        check_int(self.keep_checkpoints, "keep_checkpoints", minimum=1)
        if not isinstance(self.resume, (bool, str, Path)):
            raise ValueError(f"resume must be a bool or a checkpoint path, got {self.resume!r}")
        if isinstance(self.resume, Path):
            self.resume = str(self.resume)
        if self.init_weights is not None:
            if not isinstance(self.init_weights, (str, Path)) or not str(self.init_weights):
                raise ValueError(f"init_weights must be a path to a checkpoint or weights folder, "
                                 f"got {self.init_weights!r}")
            self.init_weights = str(self.init_weights)
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be a bool, got {self.progress!r}")
        if self.num_threads is not None:
            check_threads(self.num_threads, "num_threads")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be a bool, got {self.compile!r}")
        if self.max_seconds is not None:
            self.max_seconds = finite_float(self.max_seconds, "max_seconds", minimum=0.0)
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be a bool, got {self.deterministic!r}")
        if isinstance(self.data, dict):
            self.data = DataConfig(**_from_dict(DataConfig, self.data, "data"))
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"data must be a DataConfig or a dict, got {type(self.data).__name__}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingConfig:
        """From a plain dict (as :meth:`to_dict` writes it); unknown keys are a ValueError."""
        return cls(**_from_dict(cls, d, "the training config"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingConfig:
        """Read a ``.json`` or ``.yaml``/``.yml`` file (YAML needs PyYAML)."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            if not path.is_file():
                raise FileNotFoundError(f"config file {str(path)!r} does not exist")
            try:
                import yaml
            except ImportError as exc:  # pragma: no cover - PyYAML is installed here
                raise ImportError("reading YAML configs needs PyYAML (pip install pyyaml)") from exc
            try:
                d = yaml.safe_load(path.read_text())
            except yaml.YAMLError as exc:  # tags (!!python/...), syntax errors
                mark = getattr(exc, "problem_mark", None)
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
                problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
                raise ValueError(f"config file {str(path)!r} is not valid YAML (plain data, no tags): "
                                 f"{problem}{where}") from None
        elif path.suffix.lower() == ".json":
            d = read_json(path, "config file")
        else:
            raise ValueError(f"config file must end in .json, .yaml or .yml, got {str(path)!r}")
        return cls.from_dict(d)

    def save(self, path: str | Path) -> Path:
        """Write to ``.json`` or ``.yaml``/``.yml``, atomically."""
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return atomic_write_bytes(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())
        if path.suffix.lower() != ".json":
            raise ValueError(f"config file must end in .json, .yaml or .yml, got {str(path)!r}")
        return atomic_write_json(path, self.to_dict())
