r"""FBPConvNet (Jin et al. 2017): FBP followed by a residual U-Net, the black-box baseline.

.. math:: x = x_0 + U(x_0), \qquad x_0 = \mathrm{FBP}(y),

everything after the (frozen) FBP is learned. The FBP's filter and weights are its known
operators, frozen by default; freeing them (``model.free("filter")``) turns the baseline
into a precision-learning model.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..operators.base import LinearOperator
from .base import ReconModel, is_complex_operator, resolve_dtype
from .blocks import UNet, channel_image, check_ndim, image_channels
from .initial import INIT_ITER, InitialReconstruction, default_init, init_config


class FBPConvNet(ReconModel):
    r"""FBP followed by a residual U-Net (Jin et al. 2017).

    Parameters
    ----------
    operator : LinearOperator
        The forward operator; an XRayTransform of a circular scan for the FBP (other
        operators, e.g. MR, start from the scaled adjoint, ``init="adjoint"``).
    depth : int
        Poolings of the U-Net (Jin et al.: 4).
    width : int
        Channels of its first level (Jin et al.: 64).
    batch_norm : bool
        Batch normalisation in the U-Net (Jin et al.: yes).
    init : {"fbp", "adjoint", "zero", "cg"}, optional
        Default ``"fbp"`` for CT with a circular geometry, else ``"adjoint"``.
    init_iter : int
        CG iterations of ``init="cg"`` (recorded in the config only then).
    filter : str
        Ramp window of the FBP.
    dtype : torch.dtype or str, optional
    normalize : bool
        Normalise each sample by its data scale (:meth:`ReconModel.data_scale`), so that
        the U-Net sees images of order one, and restore the scale on the output.

    Notes
    -----
    Shape: ``(*batch, *operator.range_shape) -> (*batch, *operator.domain_shape)``.
    Known operators: ``"weights"``, ``"filter"`` (frozen by default) and ``"backprojection"``
    (fixed) of the FBP.
    """

    def __init__(
        self,
        operator: LinearOperator,
        *,
        depth: int = 4,
        width: int = 64,
        batch_norm: bool = True,
        init: str | None = None,
        init_iter: int = INIT_ITER,
        filter: str = "ram-lak",
        dtype: Any = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(operator, normalize=normalize)
        dt = resolve_dtype(dtype)
        init = default_init(operator) if init is None else init
        c = 2 if is_complex_operator(operator) else 1
        ndim = check_ndim(len(operator.domain_shape), "the number of image axes")
        self.init = InitialReconstruction(operator, init, filter=filter, dtype=dt, iterations=init_iter)
        self.unet = UNet(c, c, depth=depth, width=width, ndim=ndim, batch_norm=batch_norm, dtype=dt)
        self.init.register_parts(self, "init.", frozen=True)
        self.remember_config(depth=depth, width=width, batch_norm=batch_norm, **init_config(init, init_iter),
                             filter=filter, dtype=dt)

    def bind_operator(self, operator: LinearOperator) -> None:
        super().bind_operator(operator)
        self.init.rebind(operator)

    def reconstruct(self, y: Tensor) -> Tensor:
        """``x0 + U(x0)`` without normalisation. Shape: ``(N, *range) -> (N, *domain)``."""
        x0 = self.init(y)
        return x0 + channel_image(self.unet(image_channels(x0, self.is_complex)), 0, self.is_complex)
