"""Pre-filtered levels of an interpolated template: the anti-aliasing filters of InterpolatedSource.

A template (dhs.core.interpolated) is a bilinear surface through its pixel values.  The renderer samples it
at rays whose source-plane spacing can be comparable to a template pixel, which aliases; each ray therefore
samples the surface smoothed by a Gaussian sized to its cell.  The smoothed surfaces are precomputed as
levels, one per Gaussian width, and a width between two levels blends them linearly in variance
(level_position):

- fine levels (level_stack: FILTER_SIGMAS, on a grid LEVEL_STEPS times finer than the template pixels), the
  continuous bilinear surface convolved with each Gaussian (hat_gaussian_taps, upsample_filter), for the
  adaptive renderer;
- band-limited levels (band_limited_stack: template_render.LEVEL_SIGMAS, on the template's own pixels, one
  inverse FFT each), for smooth templates (dhs.core.template_render).

Levels are built on first use into a cache dict shared by the template's with_flux copies.  Widths are in
template pixels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft
from scipy import ndimage, special

from .template_render import LEVEL_SIGMAS

__all__ = [
    "FILTER_SIGMAS",
    "LEVEL_STEPS",
    "band_limited_stack",
    "bilinear",
    "hat_gaussian_taps",
    "level_position",
    "level_stack",
    "upsample_filter",
]

#: Gaussian widths (template pixels) of the pre-filtered template levels; intermediate widths blend the
#: two neighbouring levels linearly in variance (level 0 is the unfiltered template).  Dense where the renderer works
#: (cells of <= 1.1 template pixels want sigma <= 0.39): a blend of two Gaussians is close to the Gaussian
#: in between only when their widths are close, and a blend with the unfiltered level barely filters.
FILTER_SIGMAS = (0.0, 0.25, 0.35, 0.5, 0.6, 0.7071, 0.85, 1.0, 1.4142, 2.0)
FILTER_VARIANCES = np.square(FILTER_SIGMAS)
#: samples per template pixel (per axis) of the pre-filtered levels.  Bilinear interpolation on the level
#: grid adds spectral replicas at multiples of this many times the template's sampling frequency, which
#: cells smaller than a template pixel alias back onto the flux: on a half-pixel grid (2) a compact template
#: (Gaussian, sigma 0.7 template pixels of 0.1") summed to 2.2 % off on the renderer's cells, on a
#: quarter-pixel grid 0.3 % (the filtered surface evaluated exactly: 0.07-0.35 %).  Finer grids cost S^2 memory
#: and build time per template.
LEVEL_STEPS = 4


def hat_gaussian_taps(sigma: float, steps: int = LEVEL_STEPS) -> np.ndarray:
    """Samples at 1/steps-pixel steps of the bilinear hat (x) a Gaussian of ``sigma`` (template pixels).

    The hat is the bilinear interpolation kernel, max(0, 1 - |x|); convolved with a Gaussian g it is
    F(x + 1) - 2 F(x) + F(x - 1) with F(u) = u Phi(u / sigma) + sigma phi(u / sigma), the second
    antiderivative of g.  Returns taps at x = m / steps, m = -M..M; the taps of each phase (m modulo
    steps) sum to 1 (a partition of unity: no flux is gained or lost).
    """
    m = math.ceil(steps * (1.0 + 4.0 * sigma))
    x = np.arange(-m, m + 1, dtype=np.float64) / steps
    if sigma == 0.0:
        taps = np.maximum(0.0, 1.0 - np.abs(x))
    else:

        def antiderivative2(u: np.ndarray) -> np.ndarray:
            z = u / sigma
            return u * special.ndtr(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

        taps = antiderivative2(x + 1.0) - 2.0 * antiderivative2(x) + antiderivative2(x - 1.0)
    # (renormalise each phase: the Gaussian's tails beyond 4 sigma are dropped)
    phase = np.arange(-m, m + 1) % steps
    for k in range(steps):
        taps[phase == k] /= taps[phase == k].sum()
    return taps


def upsample_filter(a: np.ndarray, taps: np.ndarray, steps: int, axis: int, out=None) -> np.ndarray:
    """``a`` zero-inserted ``steps``-fold along ``axis`` (length steps (n - 1) + 1) and correlated with ``taps``.

    ``taps`` (odd length, centred) are on the fine grid.  Computed per output phase q (fine index
    steps i + q) from the taps that meet non-zero samples -- every steps-th one -- instead of correlating
    the zero-inserted array, which would spend (steps - 1) / steps of the work on zeros.  Samples beyond
    the ends of ``a`` count as zero.  ``out``: optional array of the result's shape to fill (any float
    dtype; the sums are formed in float64).
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[axis]
    m = (taps.size - 1) // 2
    shape = list(a.shape)
    shape[axis] = steps * (n - 1) + 1
    if out is None:
        out = np.empty(shape, dtype=np.float64)
    fine = np.moveaxis(out, axis, 0)  # a view: filling it fills ``out``
    for q in range(steps):
        # fine index steps i + q + k (k = -m..m) is coarse sample i + j when k = steps j - q: the taps of
        # this phase, as a centred odd-length filter over j = -reach..reach
        reach = (m + q) // steps + 1
        sub = np.zeros(2 * reach + 1, dtype=np.float64)
        for j in range(-reach, reach + 1):
            k = steps * j - q
            if -m <= k <= m:
                sub[j + reach] = taps[k + m]
        phase = ndimage.correlate1d(a, sub, axis=axis, mode="constant")
        count = fine[q::steps].shape[0]
        fine[q::steps] = np.moveaxis(phase, axis, 0)[:count]
    return out


def level_stack(store: dict, padded: np.ndarray, dtype, k_lo: int, k_hi: int) -> np.ndarray:
    """(n_levels, S (NY - 1) + 1, S (NX - 1) + 1) pre-filtered templates; levels k_lo..k_hi built.

    ``padded``: the (NY, NX) unit-sum template on its zero border; ``store``: the template's level cache.
    Level k holds samples, on a grid S = LEVEL_STEPS times finer than the template's pixels (index
    S i is padded pixel i), of the continuous bilinear surface convolved with a Gaussian of
    FILTER_SIGMAS[k] template pixels; bilinear interpolation on that finer grid reproduces it closely
    (exactly for level 0).  Filtering the pixel values instead would not do: such a filter's transfer
    function is periodic in the template's sampling frequency, so it passes the bilinear surface's
    spectral replicas around multiples of that frequency, which is where rays spaced ~1-1.5 template
    pixels alias (the summed flux of compact templates would be off by up to 3 %).  Levels are built on first
    use (the renderer's cells need only the first few).
    """
    key = np.dtype(dtype).name
    built = store.setdefault("built " + key, set())
    if key not in store:
        ny, nx = padded.shape
        shape = (len(FILTER_SIGMAS), LEVEL_STEPS * (ny - 1) + 1, LEVEL_STEPS * (nx - 1) + 1)
        store[key] = np.empty(shape, dtype=dtype)
    stack = store[key]
    for k in range(k_lo, k_hi + 1):
        if k not in built:
            _fine_level(padded, k, out=stack[k])
            built.add(k)
    return stack


def _fine_level(padded: np.ndarray, k: int, out=None) -> np.ndarray:
    """Level k of level_stack (separable: rows, then columns; sums in float64), into ``out``."""
    taps = hat_gaussian_taps(FILTER_SIGMAS[k])
    rows = upsample_filter(padded, taps, LEVEL_STEPS, axis=0)
    return upsample_filter(rows, taps, LEVEL_STEPS, axis=1, out=out)


def level_position(sigma_pix: np.ndarray | float):
    """Fractional index into FILTER_SIGMAS for a wanted Gaussian sigma (template pixels).

    Linear in the variance: a blend w S_b + (1 - w) S_a of two Gaussian-smoothed surfaces equals, to
    second order, the surface smoothed by the variance w sb^2 + (1 - w) sa^2.  (Blending linearly in
    sigma smoothed small cells far too much -- between the unfiltered level and the first, a variance
    growing like sigma instead of sigma^2 -- which biased lensed totals, where cells are small and
    magnification-weighted, by an amount falling only like the cell size: -0.6 % at supersampling 3
    for a compact template.)
    """
    sig2 = np.square(sigma_pix)
    return np.interp(sig2, FILTER_VARIANCES, np.arange(len(FILTER_SIGMAS), dtype=np.float64))


@functools.lru_cache(maxsize=64)
def _level_transfers(shape: tuple[int, int], lo: int, hi: int) -> np.ndarray:
    """(hi - lo + 1, H, W // 2 + 1) complex64 transfer functions (real-FFT layout) of the band-limited
    levels lo..hi (LEVEL_SIGMAS) on a periodic (H, W) grid: the bilinear hat (x) Gaussian taps of each
    level, separable; read-only, cached per grid shape."""
    out = []
    for k in range(lo, hi + 1):
        taps = hat_gaussian_taps(LEVEL_SIGMAS[k], steps=1)
        m = (taps.size - 1) // 2
        ty = np.zeros(shape[0])
        tx = np.zeros(shape[1])
        np.add.at(ty, np.arange(-m, m + 1) % shape[0], taps)
        np.add.at(tx, np.arange(-m, m + 1) % shape[1], taps)
        out.append(sfft.fft(ty)[:, None] * sfft.rfft(tx)[None, :])
    arr = np.array(out, dtype=np.complex64)
    arr.setflags(write=False)
    return arr


def band_limited_stack(store: dict, template: np.ndarray, top: int) -> np.ndarray:
    """(n_levels, H, W) float32 unit-sum template on a zero border, smoothed by the Gaussians of
    template_render.LEVEL_SIGMAS (template pixels; the continuous bilinear surface convolved with each,
    sampled at the pixel centres); levels 0..``top`` are built (on first use, one inverse FFT each, kept in
    the template's level cache ``store``)."""
    stack = store.get("bl_stack")
    if stack is None:
        border = 2 + math.ceil(4.0 * LEVEL_SIGMAS[-1])
        ny, nx = template.shape
        shape = (ny + 2 * border, nx + 2 * border)
        stack = np.empty((len(LEVEL_SIGMAS),) + shape, dtype=np.float32)
        stack[0] = 0.0
        stack[0, border:-border, border:-border] = template / template.sum()
        store["bl_stack"] = stack
        store["bl_spec"] = sfft.rfft2(stack[0])  # (complex64)
        store["bl_built"] = 0
    lo, top = store["bl_built"] + 1, min(top, len(LEVEL_SIGMAS) - 1)
    if top >= lo:
        spec = store["bl_spec"] * _level_transfers(stack.shape[1:], lo, top)
        stack[lo : top + 1] = sfft.irfft2(spec, s=stack.shape[1:])
        store["bl_built"] = top
    return stack


def bilinear(img: np.ndarray, c: np.ndarray, r: np.ndarray, level=None, pair: bool = False):
    """Bilinear interpolation of ``img`` (2-D, or a stack of levels) at column c, row r (in its pixels).

    Positions must lie inside [0, width - 1) x [0, height - 1).  With a stack, ``level`` gives each
    position's level; ``pair=True`` returns the values on that level and on the next one.
    """
    height, width = img.shape[-2:]
    c0 = np.floor(c)
    r0 = np.floor(r)
    fx = c - c0
    fy = r - r0
    flat = r0.astype(np.intp)
    flat *= width
    flat += c0.astype(np.intp)
    if level is not None:
        flat += level * (height * width)
    img = img.reshape(-1)

    def at(base):
        v00 = img[base]
        v01 = img[base + 1]
        v10 = img[base + width]
        v11 = img[base + width + 1]
        v01 -= v00
        v01 *= fx
        v00 += v01
        v11 -= v10
        v11 *= fx
        v10 += v11
        v10 -= v00
        v10 *= fy
        v00 += v10
        return v00

    if pair:
        return at(flat), at(flat + height * width)
    return at(flat)
