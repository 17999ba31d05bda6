"""Compiled kernels (ctypes), their torch.library custom ops and the pure-torch reference."""

from .loader import cpu_library
from .ops import xray_adjoint, xray_forward

__all__ = ["cpu_library", "xray_adjoint", "xray_forward"]
