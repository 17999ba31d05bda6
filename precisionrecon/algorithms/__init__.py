"""Operator-agnostic iterative reconstruction: CG, CGLS, SIRT, FISTA, PDHG (TV).

Every algorithm takes any :class:`~precisionrecon.operators.LinearOperator` (CT or MR, real
or complex), treats the leading axes of the data as independent problems (step sizes and
CG coefficients are computed per problem), and returns a :class:`Result` with the
solution and a per-iteration, per-problem history.
"""

from .cg import cg
from .cgls import cgls
from .fista import fista
from .pdhg import pdhg, pdhg_tv, stacked_norm
from .prox import L1, TV, NonNegativity, ProxOperator, TransformL1, soft_threshold
from .result import Result
from .sirt import sirt, sirt_weights

__all__ = [
    "L1",
    "TV",
    "NonNegativity",
    "ProxOperator",
    "Result",
    "TransformL1",
    "cg",
    "cgls",
    "fista",
    "pdhg",
    "pdhg_tv",
    "sirt",
    "sirt_weights",
    "soft_threshold",
    "stacked_norm",
]
