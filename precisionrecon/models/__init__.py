"""Learned reconstructions built on known operators (precision learning).

All models share :class:`ReconModel`: ``model(y) -> x`` with the operator bound at
construction (``model.operator``), known-operator parts that can be frozen or freed
(``model.freeze("filter")``, ``model.known_operators()``, ``model.n_free_parameters``), and
``model.config()`` -> :func:`build` to rebuild a model without the training code.
With ``normalize=True`` (the default) every model is scale-aware,
``model(y) = s(y) f(y / s(y))`` with ``s(y) = ||y|| / ||A 1||`` (:meth:`ReconModel.data_scale`).
"""

from ..operators.weights import extended_parker_weights  # its old import path
from .allocator import retain_freed_memory
from .base import ReconModel, build, registered_models
from .blocks import ConvPReLUStack, UNet
from .compiled import COMPILED_BLOCKS, compile_blocks
from .fbpconvnet import FBPConvNet
from .initial import InitialReconstruction
from .learned_fbp import FBPLayer, LearnedFBP
from .memory import for_operator
from .primal_dual import LearnedPrimalDual
from .serialize import operator_from_dict, operator_to_dict
from .varnet import FieldsOfExperts, RBFActivation, VariationalNetwork

__all__ = [
    "COMPILED_BLOCKS",
    "ConvPReLUStack",
    "FBPConvNet",
    "FBPLayer",
    "FieldsOfExperts",
    "InitialReconstruction",
    "LearnedFBP",
    "LearnedPrimalDual",
    "RBFActivation",
    "ReconModel",
    "UNet",
    "VariationalNetwork",
    "build",
    "compile_blocks",
    "extended_parker_weights",
    "for_operator",
    "operator_from_dict",
    "operator_to_dict",
    "registered_models",
    "retain_freed_memory",
]
