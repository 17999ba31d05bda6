"""MR known operators: centred FFT, Cartesian sampling and masks, coil sensitivities and SENSE,
NUFFT (finufft / cufinufft) with density compensation and a Toeplitz normal operator,
trajectories, complex phantoms and noise, fastMRI and ISMRMRD files, ESPIRiT maps, and
baseline reconstructions (CG-SENSE, TV and L1-wavelet compressed sensing).

MR data are native complex tensors (``complex64`` / ``complex128``); k-space is centred
(zero frequency at index ``n // 2``) and FFTs are orthonormal, as in fastMRI.
"""

from .coils import SENSE, Coils, acs_region, birdcage_maps, coil_images, estimate_maps, rss, simulate_kspace
from .density import pipe_menon_density, radial_density
from .espirit import espirit
from .fastmri import (
    FastMRIFile,
    FastMRIHeader,
    FastMRISliceDataset,
    center_crop,
    parse_ismrmrd_header,
    read_fastmri,
    rss_target,
)
from .fft import FFT, fftc, ifftc
from .masks import equispaced_lines, gaussian_mask, poisson_disc_mask, random_lines
from .mrd import MRDData, read_ismrmrd
from .nlinv import NlinvResult, nlinv
from .nufft import NUFFT, ToeplitzNormal, nudft, nudft_adjoint
from .phantoms import add_noise, random_phase, shepp_logan, smooth_phase
from .recon import cg_sense, tv_recon, zero_filled
from .sampling import Sampling, acceleration
from .trajectories import GOLDEN_ANGLE, cartesian, radial, spiral
from .wavelet import Wavelet, wavelet_recon

__all__ = [
    "FFT",
    "GOLDEN_ANGLE",
    "NUFFT",
    "SENSE",
    "Coils",
    "FastMRIFile",
    "FastMRIHeader",
    "FastMRISliceDataset",
    "MRDData",
    "NlinvResult",
    "Sampling",
    "ToeplitzNormal",
    "Wavelet",
    "acceleration",
    "acs_region",
    "add_noise",
    "birdcage_maps",
    "cartesian",
    "center_crop",
    "cg_sense",
    "coil_images",
    "equispaced_lines",
    "espirit",
    "estimate_maps",
    "fftc",
    "gaussian_mask",
    "ifftc",
    "nlinv",
    "nudft",
    "nudft_adjoint",
    "parse_ismrmrd_header",
    "pipe_menon_density",
    "poisson_disc_mask",
    "radial",
    "radial_density",
    "random_lines",
    "random_phase",
    "read_fastmri",
    "read_ismrmrd",
    "rss",
    "rss_target",
    "shepp_logan",
    "simulate_kspace",
    "smooth_phase",
    "spiral",
    "tv_recon",
    "wavelet_recon",
    "zero_filled",
]
