"""The value every iterative algorithm returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Result:
    """Solution and per-iteration history of an iterative algorithm.

    Attributes
    ----------
    x : Tensor
        The final iterate, shape ``(*batch, *domain_shape)``.
    history : dict of str to Tensor
        Per-iteration values, each of shape ``(n_iter_run, *batch)`` (one column per
        independent problem of the batch; detached, real, on the data's device). Entry
        ``k`` is the value at the iterate after ``k + 1`` iterations. Which keys exist
        depends on the algorithm (``"objective"``, ``"residual_norm"``, ``"change"``, ...).
    converged : Tensor
        Boolean, shape ``batch``: whether each problem met its ``tol`` criterion before the
        iterations ran out.
    info : dict of str to float
        Constants the run used (e.g. ``"step"``, ``"op_norm"``), to reuse in later calls.
    """

    x: Tensor
    history: dict[str, Tensor] = field(default_factory=dict)
    converged: Tensor | None = None
    info: dict[str, float] = field(default_factory=dict)

    @property
    def n_iter(self) -> int:
        """Number of iterations run (fewer than asked when all problems converged)."""
        return next((len(v) for v in self.history.values()), 0)
