r"""Calibration of predicted standard deviations: coverage, calibration error, rank
correlation with the error, and post-hoc scaling.

All metrics treat every pixel as one Gaussian prediction ``N(mean_i, std_i^2)`` of
``target_i`` and reduce over all pixels (or the axes ``dim``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._validate import REAL, REAL_OR_COMPLEX, check_model, check_tensor, finite_float, positive_int
from ._common import Wrapper, model_config
from .heads import is_heteroscedastic


def _level(level: Any) -> float:
    out = finite_float(level, "level")
    if not 0.0 < out < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return out


def _check_prediction(mean: Any, std: Any, target: Any, *, positive: bool) -> None:
    check_tensor(mean, "mean", dtype=REAL)
    check_tensor(std, "std", dtype=REAL)
    check_tensor(target, "target", dtype=REAL)
    if mean.shape != target.shape:
        raise ValueError(f"mean and target must have the same shape, got {tuple(mean.shape)} and {tuple(target.shape)}")
    try:
        ok = torch.broadcast_shapes(std.shape, mean.shape) == mean.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"std of shape {tuple(std.shape)} must broadcast to the mean's {tuple(mean.shape)}")
    bad = ~torch.isfinite(std) | ((std <= 0) if positive else (std < 0))
    if bool(bad.any()):
        raise ValueError(f"std must be finite and {'> 0' if positive else '>= 0'}")


def normal_quantile(p: float) -> float:
    """``Phi^{-1}(p)``, the standard normal quantile (e.g. 1.6449 for ``p = 0.95``)."""
    return float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))


def coverage(
    mean: Tensor, std: Tensor, target: Tensor, level: float = 0.9, *, dim: int | tuple[int, ...] | None = None
) -> Tensor:
    r"""Fraction of targets inside the central Gaussian interval of probability ``level``,
    ``|target - mean| <= z std`` with ``z = Phi^{-1}((1 + level) / 2)`` (1.645 for 90 %).

    A calibrated predictor covers ``level`` of the pixels.

    Parameters
    ----------
    mean, target : Tensor
        Same shape, real.
    std : Tensor
        Broadcastable to ``mean``, finite and >= 0.
    level : float
        In (0, 1).
    dim : int or tuple of int, optional
        Axes to average over; default all.

    Returns
    -------
    Tensor
        Shape: ``()``, or ``mean``'s shape without ``dim``; float64.
    """
    _check_prediction(mean, std, target, positive=False)
    z = normal_quantile(0.5 * (1.0 + _level(level)))
    inside = (target - mean).abs() <= z * std
    return inside.to(torch.float64).mean() if dim is None else inside.to(torch.float64).mean(dim=dim)


def _levels(levels: Tensor | None, n_levels: int) -> Tensor:
    if levels is None:
        n = positive_int(n_levels, "n_levels")
        return torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
    p = torch.as_tensor(levels, dtype=torch.float64).detach().cpu()
    if p.ndim != 1 or p.numel() == 0 or not bool(((p > 0) & (p < 1)).all()):
        raise ValueError("levels must be a non-empty 1-D sequence of probabilities in (0, 1)")
    return p


def calibration_curve(
    mean: Tensor, std: Tensor, target: Tensor, *, levels: Tensor | None = None, n_levels: int = 19
) -> tuple[Tensor, Tensor]:
    r"""Expected against observed frequency of the predictive CDF (Kuleshov et al. 2018).

    For each level ``p_j`` the observed frequency is the fraction of pixels with
    ``Phi((target - mean) / std) <= p_j``; a calibrated predictor observes ``p_j``.

    Parameters
    ----------
    mean, std, target : Tensor
        As :func:`coverage`, with ``std > 0``.
    levels : Tensor, optional
        Probabilities in (0, 1); default ``j / (n_levels + 1)``, ``j = 1..n_levels``
        (0.05, 0.10, ..., 0.95 for 19).

    Returns
    -------
    (Tensor, Tensor)
        Expected ``p_j`` and observed frequencies, each of shape ``(n_levels,)``, float64, CPU.
    """
    _check_prediction(mean, std, target, positive=True)
    p = _levels(levels, n_levels)
    u = torch.special.ndtr(((target - mean) / std).to(torch.float64)).flatten().sort().values.cpu()
    observed = torch.searchsorted(u, p, right=True).to(torch.float64) / u.numel()
    return p, observed


def regression_calibration_error(
    mean: Tensor, std: Tensor, target: Tensor, *, levels: Tensor | None = None, n_levels: int = 19
) -> Tensor:
    r"""Calibration error of Kuleshov et al. (2018), ``mean_j (p_j - \hat p_j)^2`` over the
    levels of :func:`calibration_curve` (uniform weights). 0 for a calibrated predictor;
    its square root is the RMS gap of the calibration curve.

    Returns
    -------
    Tensor
        Shape: ``()``, float64.
    """
    expected, observed = calibration_curve(mean, std, target, levels=levels, n_levels=n_levels)
    return (expected - observed).square().mean()


def _ranks(x: Tensor) -> Tensor:
    """Ranks 1..n of a 1-D tensor, ties getting their average rank (as scipy.stats.rankdata)."""
    values, order = torch.sort(x)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(average[inverse])
    ranks[order] = average[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    r"""Spearman's rank correlation of two equally sized tensors (flattened), e.g. the
    predicted std against the absolute error: the Pearson correlation of their ranks,
    ties averaged (as ``scipy.stats.spearmanr``). ``nan`` when either is constant.

    Returns
    -------
    Tensor
        Shape: ``()``, float64.
    """
    check_tensor(a, "a", dtype=REAL)
    check_tensor(b, "b", dtype=REAL)
    if a.numel() != b.numel() or a.numel() < 2:
        raise ValueError(f"a and b must have the same number (>= 2) of elements, got {a.numel()} and {b.numel()}")
    ra = _ranks(a.detach().flatten().to(torch.float64))
    rb = _ranks(b.detach().flatten().to(torch.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = torch.sqrt(ra.square().sum() * rb.square().sum())
    if float(denominator) == 0.0:
        return torch.tensor(math.nan, dtype=torch.float64)
    return (ra * rb).sum() / denominator


def fit_std_scale(std: Tensor, error: Tensor) -> float:
    r"""The factor ``s`` that makes ``s * std`` calibrated on validation data.

    ``s`` minimises the Gaussian NLL ``sum_i log(s std_i) + error_i^2 / (2 s^2 std_i^2)``
    (real; the complex circular NLL has the same minimiser), in closed form

    .. math:: s = \sqrt{\operatorname{mean}_i \, |e_i|^2 / \sigma_i^2}.

    Parameters
    ----------
    std : Tensor
        Predicted standard deviations (> 0), broadcastable to ``error``.
    error : Tensor
        ``mean - target`` on validation data, real or complex.

    Returns
    -------
    float
    """
    check_tensor(std, "std", dtype=REAL)
    check_tensor(error, "error", dtype=REAL_OR_COMPLEX)
    try:
        torch.broadcast_shapes(std.shape, error.shape)
    except RuntimeError as exc:
        raise ValueError(f"std {tuple(std.shape)} and error {tuple(error.shape)} must broadcast") from exc
    if not bool((torch.isfinite(std) & (std > 0)).all()):
        raise ValueError("std must be finite and > 0")
    e = error.detach().to(torch.complex128 if error.is_complex() else torch.float64)
    ratio = e.abs().square() / std.detach().to(torch.float64).square()
    return math.sqrt(float(ratio.mean()))


class CalibratedModel(Wrapper):
    """A model whose predicted std is multiplied by a fitted scale (see :func:`fit_std_scale`).

    ``calibrated.predict(y) = (mean, scale * std)`` with ``model.predict(y) = (mean, std)``;
    ``calibrated(y)`` is ``model(y)``, with ``log_var + 2 log(scale)`` when that is a
    ``(mean, log_var)`` pair (so a calibrated member of a :class:`DeepEnsemble` contributes
    its scaled variance). :meth:`fit` finds the scale on validation data.

    Parameters
    ----------
    model : nn.Module
        A model with ``predict(y) -> (mean, std)``: :class:`HeteroscedasticHead`,
        :class:`MCDropout`, :class:`DeepEnsemble`.
    scale : float
        Positive factor.

    Notes
    -----
    Shape: as ``model`` (``predict``: ``y -> ((*batch, *image), (*batch, *image))``).
    """

    def __init__(self, model: nn.Module, scale: float) -> None:
        super().__init__()
        self.model = check_model(model)
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model ({type(model).__name__}) must have predict(y) -> (mean, std)")
        self.scale = finite_float(scale, "scale")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")

    @classmethod
    def fit(cls, model: nn.Module, y: Tensor, target: Tensor) -> CalibratedModel:
        """Fit the scale on validation measurements ``y`` and their ground truth ``target``."""
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model ({type(model).__name__}) must have predict(y) -> (mean, std)")
        with torch.no_grad():
            mean, std = model.predict(y)
        if mean.shape != target.shape:
            raise ValueError(f"target must have the prediction's shape {tuple(mean.shape)}, got {tuple(target.shape)}")
        return cls(model, fit_std_scale(std, mean - target))

    def wrapped(self) -> list[nn.Module]:
        return [self.model]

    def forward(self, y: Tensor) -> Any:
        out = self.model(y)
        if is_heteroscedastic(out):
            return out[0], out[1] + 2.0 * math.log(self.scale)
        return out

    def predict(self, y: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.model.predict(y)
        return mean, self.scale * std

    def config(self) -> dict[str, Any]:
        return self.make_config({"scale": self.scale}, model=model_config(self.model))
