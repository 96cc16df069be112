"""The light window: sub-pixel passes only around the bright, unresolved part of a lensed source.

Rendering with windows is compared with the same renderer sampling the whole stamp on the sub-pixel grid
(the window forced to the full grid): images within 1e-4 of their peak, stamp flux and magnification within
1e-4 (measured: 4.6e-5 and 6e-6 here, 1.2e-5 on other stamps).  Accuracy against brute force is covered for both
by tests/core/test_render.py and test_convergence.py.
"""


import numpy as np
import pytest

import dhs.core.batch as batch
from dhs.core import SIELens
from dhs.core.batch import render_lensed_batch
from dhs.core.light_window import WINDOW_LEVEL, block_axes, light_windows, spread_blocks
from dhs.core.refinement import stretched_bounds
from dhs.core.render import subpixel_axes

from .test_batch import _random_rows


def _stamps(n: int, seed: int):
    """test_batch's mixed Sersic rows (lensed, unlensed, shear-only, round; compact to extended; per-band
    PSFs), at unit flux in every band."""
    lenses, sources, _, fwhm, beta, offsets = _random_rows(n, seed, interpolated_every=n + 1)
    return lenses, sources, np.ones((n, 3)), fwhm, beta, offsets


def _render(stamps):
    lenses, sources, fluxes, fwhm, beta, offsets = stamps
    return render_lensed_batch(
        lenses, sources, fluxes, fwhm, psf_beta=beta, offsets_pix=offsets, return_magnification=True
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_windowed_rendering_matches_the_full_subpixel_grid(seed, monkeypatch):
    stamps = _stamps(32, seed)
    img, mu = _render(stamps)
    monkeypatch.setattr(batch, "light_windows", lambda means, *args: [(slice(None), slice(None))] * len(means))
    full, mu_full = _render(stamps)
    peak = full.max(axis=(1, 2, 3))
    assert (np.abs(img - full).max(axis=(1, 2, 3)) <= 1e-4 * peak).all()
    flux, flux_full = img.sum(axis=(2, 3)), full.sum(axis=(2, 3))
    assert np.abs(flux / flux_full - 1).max() <= 1e-4
    assert np.abs(mu / mu_full - 1).max() <= 1e-4


def test_window_holds_bright_and_flagged_blocks_with_a_margin():
    ss, size = 3, 16
    shape = (size * ss + 2, size * ss + 2)
    means = np.full((size + 2, size + 2), 1e-9, dtype=np.float32)
    flags = np.zeros(means.shape, dtype=bool)

    def window(extra=None):
        # (the row under test next to a bright, flagged other row: windows are per row)
        other_means, other_flags = np.ones_like(means), np.ones_like(flags)
        found = light_windows(
            np.stack([means, other_means]), np.stack([flags, other_flags]), ss, shape, [extra, None]
        )
        assert found[1] == (slice(0, shape[0]), slice(0, shape[1]))
        return found[0]

    assert window() is not None  # the brightest block is always in
    means[5, 7] = 1.0  # block (4, 6): cells 13..15 x 19..21
    flags[9, 3] = True  # block (8, 2): cells 25..27 x 7..9
    rows, cols = window()
    # one block of margin (3 cells) and one cell for the Laplacian stencil on each side
    assert (rows.start, rows.stop) == (13 - 4, 27 + 4 + 1)
    assert (cols.start, cols.stop) == (7 - 4, 21 + 4 + 1)
    # faint blocks stay outside: their level is relative to the row's brightest block
    means[0, 0] = 0.5 * WINDOW_LEVEL
    assert window() == (rows, cols)
    # the stretched region near the lens centre is always included, clipped to the grid
    rows, cols = window(extra=(0, 40, 30, 50))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 41, 3, 50)
    # nothing bright, flagged or stretched: no window
    assert light_windows(np.zeros((1,) + means.shape), np.zeros((1,) + means.shape, bool), ss, shape)[0] is None


def test_blocks_are_pixels_and_spread_keeps_their_mean():
    ss, size = 3, 8
    x1, y1, *_ = subpixel_axes(size, ss, 0.262, (0.3, -0.2))
    xb = block_axes(x1[None], ss, 0.262 / ss)[0]
    # block k's centre is the centre of its middle cell 2 + ss k (cells 1 + ss k .. ss k + ss)
    np.testing.assert_allclose(xb[1:-1], x1[2::ss][:size], atol=1e-6)
    assert xb[0] == pytest.approx(x1[2] - 0.262, abs=1e-6)
    means = np.random.default_rng(0).random((2, size + 2, size + 2)).astype(np.float32)
    cells = spread_blocks(means, ss, (size * ss + 2, size * ss + 2))
    inner = cells[:, 1:-1, 1:-1].reshape(2, size, ss, size, ss)
    assert (inner == means[:, 1:-1, None, 1:-1, None]).all()
    assert (cells[:, 0, 1:-1:ss] == means[:, 0, 1:-1]).all()  # cell 0 lies in block -1


def test_stretched_bounds_cover_the_lens_centre_only_when_lensed():
    x1, y1, *_ = subpixel_axes(32, 3, 0.262, (0.0, 0.0))
    assert stretched_bounds(SIELens(0.0), x1, y1, 0.262 / 3) is None
    r0, r1, c0, c1 = stretched_bounds(SIELens(1.0, 0.1, 0.0), x1, y1, 0.262 / 3)
    centre = int(np.argmin(np.abs(x1)))
    assert r0 < centre < r1 and c0 < centre < c1
    assert (c1 - c0) * 0.262 / 3 >= 1.0  # at least theta_E / (2 - g) on each side
