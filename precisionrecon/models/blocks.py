"""Small CNN building blocks of the learned reconstructions, and the real/complex channel layout.

Images and projections reach a CNN as ``(N, C, *spatial)`` real tensors: a real image is one
channel, a complex (MR) image two (real and imaginary part). The convolutions are 1-D, 2-D
or 3-D after the number of spatial axes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

from .._validate import positive_int

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {1: functional.max_pool1d, 2: functional.max_pool2d, 3: functional.max_pool3d}
CONV_FN = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}
CONV_TRANSPOSE_FN = {1: functional.conv_transpose1d, 2: functional.conv_transpose2d, 3: functional.conv_transpose3d}


def check_ndim(ndim: int, name: str = "ndim") -> int:
    """The number of spatial axes of a convolution: 1, 2 or 3."""
    if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim not in (1, 2, 3):
        raise ValueError(f"{name} must be 1, 2 or 3 (spatial axes of the convolution), got {ndim!r}")
    return ndim


def odd_kernel(kernel_size: int, name: str = "kernel_size") -> int:
    """A positive odd kernel size (so that 'same' zero padding is symmetric)."""
    k = positive_int(kernel_size, name)
    if k % 2 == 0:
        raise ValueError(f"{name} must be odd (symmetric 'same' padding), got {k}")
    return k


# ------------------------------------------------------------------ channel layout


def image_channels(x: Tensor, is_complex: bool) -> Tensor:
    """``(N, *spatial)`` -> ``(N, c, *spatial)`` real, ``c = 2`` (real, imag) if complex else 1."""
    if is_complex:
        return torch.stack([x.real, x.imag], dim=1)
    if x.is_complex():
        raise TypeError("a complex tensor reached a model built for a real operator")
    return x.unsqueeze(1)


def channel_image(c: Tensor, index: int, is_complex: bool) -> Tensor:
    """Image ``index`` of a channel stack: ``(N, C, *spatial)`` -> ``(N, *spatial)``; complex
    images occupy the channel pairs ``(2 index, 2 index + 1)``."""
    if is_complex:
        return torch.complex(c[:, 2 * index], c[:, 2 * index + 1])
    return c[:, index]


def fold(t: Tensor, n_spatial: int) -> tuple[Tensor, tuple[int, ...]]:
    """``(*lead, *spatial)`` -> ``(prod(lead), *spatial)``; returns the leading shape too."""
    lead = tuple(t.shape[: t.dim() - n_spatial])
    return t.reshape(-1, *t.shape[t.dim() - n_spatial :]), lead


# ------------------------------------------------------------------ blocks


class ConvPReLUStack(nn.Module):
    r"""``n_layers`` convolutions with PReLU between them (none after the last):
    ``conv -> PReLU -> conv -> PReLU -> conv``, the update networks of Adler & Öktem (2018).

    Parameters
    ----------
    in_channels, out_channels : int
    width : int
        Channels of the hidden layers (Adler & Öktem: 32).
    n_layers : int
        Number of convolutions, >= 1 (Adler & Öktem: 3).
    kernel_size : int
        Odd kernel size, 'same' zero padding (Adler & Öktem: 3).
    ndim : int
        Spatial axes (1, 2 or 3).
    dtype : torch.dtype, optional
        Parameter dtype (default ``torch.get_default_dtype()``).

    Notes
    -----
    Shape: ``(N, in_channels, *spatial) -> (N, out_channels, *spatial)``. Weights are
    Xavier-uniform, biases zero, PReLU slopes zero (a ReLU at the start), as in their code.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int = 32,
        n_layers: int = 3,
        kernel_size: int = 3,
        ndim: int = 2,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        conv = _CONV[check_ndim(ndim)]
        k = odd_kernel(kernel_size)
        n_layers = positive_int(n_layers, "n_layers")
        sizes = [positive_int(in_channels, "in_channels")]
        sizes += [positive_int(width, "width")] * (n_layers - 1) + [positive_int(out_channels, "out_channels")]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            c = conv(sizes[i], sizes[i + 1], k, padding=k // 2, dtype=dtype)
            nn.init.xavier_uniform_(c.weight)
            nn.init.zeros_(c.bias)
            layers.append(c)
            if i < n_layers - 1:
                layers.append(nn.PReLU(sizes[i + 1], init=0.0, dtype=dtype))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class _DoubleConv(nn.Sequential):
    """(conv 3x3 -> [batch norm] -> ReLU) twice."""

    def __init__(self, c_in: int, c_out: int, ndim: int, batch_norm: bool, dtype: torch.dtype | None) -> None:
        layers: list[nn.Module] = []
        for a, b in ((c_in, c_out), (c_out, c_out)):
            layers.append(_CONV[ndim](a, b, 3, padding=1, bias=not batch_norm, dtype=dtype))
            if batch_norm:
                layers.append(_BATCH_NORM[ndim](b, dtype=dtype))
            layers.append(nn.ReLU())
        super().__init__(*layers)


class UNet(nn.Module):
    r"""U-Net (Ronneberger et al. 2015) as in FBPConvNet (Jin et al. 2017).

    ``depth`` down-sampling steps (2x2 max pooling), each level two 3x3 convolutions with
    batch normalisation and ReLU, ``width * 2**level`` channels, up-sampling by 2x2
    transposed convolutions, skip connections by concatenation, and a final 1x1
    convolution. Jin et al.: ``depth=4``, ``width=64``. Inputs whose sizes are not
    multiples of ``2**depth`` are zero-padded and the output cropped back.

    Parameters
    ----------
    in_channels, out_channels : int
    depth : int
        Number of poolings (>= 1).
    width : int
        Channels of the first level.
    ndim : int
        Spatial axes (2 or 3; 1 works too).
    batch_norm : bool
        Batch normalisation after every 3x3 convolution.
    dtype : torch.dtype, optional

    Notes
    -----
    Shape: ``(N, in_channels, *spatial) -> (N, out_channels, *spatial)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        depth: int = 4,
        width: int = 64,
        ndim: int = 2,
        batch_norm: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.ndim = check_ndim(ndim)
        self.depth = positive_int(depth, "depth")
        width = positive_int(width, "width")
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be a bool, got {type(batch_norm).__name__}")
        chans = [width * 2**i for i in range(self.depth + 1)]
        self.down = nn.ModuleList()
        c = positive_int(in_channels, "in_channels")
        for ch in chans:
            self.down.append(_DoubleConv(c, ch, ndim, batch_norm, dtype))
            c = ch
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            self.upsample.append(_CONV_T[ndim](2 * ch, ch, 2, stride=2, dtype=dtype))
            self.up.append(_DoubleConv(2 * ch, ch, ndim, batch_norm, dtype))
        self.head = _CONV[ndim](chans[0], positive_int(out_channels, "out_channels"), 1, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        spatial = tuple(x.shape[2:])
        m = 2**self.depth
        pad: list[int] = []
        for n in reversed(spatial):  # functional.pad wants the last axis first
            pad += [0, (-n) % m]
        h = functional.pad(x, pad) if any(pad) else x
        skips: list[Tensor] = []
        for i, block in enumerate(self.down):
            h = block(h)
            if i < self.depth:
                skips.append(h)
                h = _MAX_POOL[self.ndim](h, 2)
        for upsample, block in zip(self.upsample, self.up, strict=True):
            h = block(torch.cat([skips.pop(), upsample(h)], dim=1))
        out = self.head(h)
        return out[(slice(None), slice(None), *(slice(0, n) for n in spatial))]

