"""Independent reference renderer for the tests: lenstronomy ray shooting and light profiles, GalSim Moffat.

It shares no code with dhs.core: rays from lenstronomy ``LensModel(['SIE', 'SHEAR'])``, surface
brightness from lenstronomy ``SERSIC_ELLIPSE`` (with R_sersic rescaled so that lenstronomy's approximate
b_n gives the exact-b_n profile, amplitude from lenstronomy's analytic total flux) or ``INTERPOL``;
PSF from GalSim's Fourier-space Moffat (untruncated) on a zero-padded, heavily supersampled grid; then
pixel integration by binning the convolved sub-pixels.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
from scipy import fft as sfft
from scipy import special

_LENS = LensModel(["SIE", "SHEAR"])


def lens_kwargs(theta_e, e1, e2, gamma1, gamma2):
    return [
        {"theta_E": theta_e, "e1": e1, "e2": e2, "center_x": 0.0, "center_y": 0.0},
        {"gamma1": gamma1, "gamma2": gamma2, "ra_0": 0.0, "dec_0": 0.0},
    ]


def lenstronomy_sersic_kwargs(flux, r_eff, n, e1, e2, x, y):
    """SERSIC_ELLIPSE kwargs describing the exact-b_n Sersic with total flux ``flux``."""
    light = LightModel(["SERSIC_ELLIPSE"])
    profile = light.func_list[0]
    b_exact = float(special.gammaincinv(2 * n, 0.5))
    b_approx = float(profile.b_n(n))
    r_len = r_eff * (b_approx / b_exact) ** n
    kw = {"amp": 1.0, "R_sersic": r_len, "n_sersic": n, "e1": e1, "e2": e2, "center_x": x, "center_y": y}
    unit = float(profile.total_flux(**{k: v for k, v in kw.items() if k not in ("center_x", "center_y")}))
    kw["amp"] = flux / unit
    return light, [kw]


def moffat_transfer(n, h, fwhm, beta):
    """GalSim Moffat Fourier transform on the rfft2 frequency grid of an n x n array with spacing h."""
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    dk = 2.0 * math.pi / (n * h)
    kimg = psf.drawKImage(nx=n, ny=n, scale=dk)
    arr = np.fft.ifftshift(kimg.array.real)
    return arr[:, : n // 2 + 1]


def reference_image(kw_lens, light, kw_light, fwhm, beta, size=48, pixscale=0.262, offset=(0.0, 0.0), ss=12):
    """(size, size) reference image, nanomaggies/pixel (source (x) Moffat (x) pixel)."""
    m = size * ss
    h = pixscale / ss
    frac = (np.arange(m) + 0.5) / ss - 0.5
    x1 = (frac - (size // 2 + offset[0])) * pixscale
    y1 = (frac - (size // 2 + offset[1])) * pixscale
    xx, yy = np.meshgrid(x1, y1)
    if kw_lens is None:
        bx, by = xx.ravel(), yy.ravel()
    else:
        bx, by = _LENS.ray_shooting(xx.ravel(), yy.ravel(), kw_lens)
    sb = light.surface_brightness(bx, by, kw_light).reshape(m, m) * h * h
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    wrap = alpha * math.sqrt(1e-5 ** (-1.0 / beta) - 1.0)  # PSF below 1e-5 of its peak beyond this
    n = sfft.next_fast_len(m + math.ceil(wrap / h))
    if n % 2:
        n = sfft.next_fast_len(n + 1)
        while n % 2:
            n = sfft.next_fast_len(n + 1)
    spec = sfft.rfft2(sb, s=(n, n)) * moffat_transfer(n, h, fwhm, beta)
    conv = sfft.irfft2(spec, s=(n, n))[:m, :m]
    return conv.reshape(size, ss, size, ss).sum(axis=(1, 3))
