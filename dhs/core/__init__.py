"""dhs.core — lensing physics, pure numpy/scipy (no Spark, no I/O, no other dhs imports).

Conventions (docs/conventions.md): arcsec in the stamp's pixel frame (x along columns, y along rows), origin
at the lens centre; fluxes in nanomaggies; lenstronomy SIE / SHEAR / SERSIC_ELLIPSE parameters.
"""

from .batch import render_lensed_batch
from .interpolated import InterpolatedSource
from .lens import SIELens, ellipticity_to_phi_q, sie_shear_deflection
from .metrics import (
    SNR_METRICS,
    arc_snr_metrics,
    lensed_half_light_radius,
    lensed_total_flux,
    magnification,
    total_injected_flux,
)
from .psf import TruncatedKernelWarning, moffat_alpha, moffat_kernel, moffat_otf
from .render import DEFAULT_SUPERSAMPLE, render_arc, render_lensed_bands
from .sersic import SersicSource, sersic_b_n
from .source_profile import SourceProfile

__all__ = [
    "DEFAULT_SUPERSAMPLE",
    "SNR_METRICS",
    "InterpolatedSource",
    "SIELens",
    "SersicSource",
    "SourceProfile",
    "TruncatedKernelWarning",
    "arc_snr_metrics",
    "ellipticity_to_phi_q",
    "lensed_half_light_radius",
    "lensed_total_flux",
    "magnification",
    "moffat_alpha",
    "moffat_kernel",
    "moffat_otf",
    "render_arc",
    "render_lensed_bands",
    "render_lensed_batch",
    "sersic_b_n",
    "sie_shear_deflection",
    "total_injected_flux",
]
