"""Sub-cell moments of refined cells (dhs.core.subcell_moments): the parallel-axis sums and the zero-flux patterns
that carry them onto the cell grid, against analytic moments."""

import numpy as np
import pytest

from dhs.core.subcell_moments import (
    _add_subcell_moments,
    _combine_moments,
    _smooth_split_moments,
    _split_moment_maps,
)


@pytest.mark.parametrize("k", [2, 4])
def test_moment_maps_equal_the_parallel_axis_sums(k):
    rng = np.random.default_rng(k)
    sub = rng.uniform(0.0, 2.0, (7, k, k))
    sub_mom = rng.normal(0.0, 0.1, (5, 7, k, k))
    means_map, moments_map = _split_moment_maps(k)
    flat = sub_mom.reshape(5, 7, k * k).transpose(0, 2, 1).reshape(5 * k * k, 7)
    direct = _combine_moments(sub, sub_mom)
    np.testing.assert_allclose(means_map @ sub.reshape(7, k * k).T + moments_map @ flat, direct, atol=1e-13)


@pytest.mark.parametrize("k", [2, 4])
def test_smooth_sub_cells_give_the_exact_moments_of_linear_light(k):
    """S = a + gx x + gy y on a unit cell: mean a, Mx = gx / 12, My = gy / 12, Qxx = Qyy = a / 12, Qxy = 0."""
    a, gx, gy = 2.0, 0.7, -1.3
    o = (np.arange(k) + 0.5) / k - 0.5
    sub = a + gx * o[None, None, :] + gy * o[None, :, None]  # sub-cell means (rows y, columns x)
    mom = _smooth_split_moments(k) @ sub.reshape(1, k * k).T
    np.testing.assert_allclose(mom[:, 0], [gx / 12, gy / 12, a / 12, a / 12, 0.0], atol=1e-14)


def test_patterns_keep_the_flux_and_carry_a_point_to_its_position():
    """A point of flux 1 at (0.3, -0.2) cell sides from the centre of cell (5, 5) of an empty grid: after
    the patterns the grid has total 1 and first moments (0.3, -0.2) exactly.  Second moments carry the
    deviation from what the grid implies for smooth light in that cell (mean / 12 plus the curvature term
    -2 mean / 360 of a lone cell), so the grid's own second moment is the point's minus that."""
    sb = np.zeros((11, 11))
    sb[5, 5] = 1.0
    dx, dy = 0.3, -0.2
    mom = np.array([[dx], [dy], [dx * dx], [dy * dy], [dx * dy]])
    _add_subcell_moments(sb, np.array([5]), np.array([5]), mom)
    rows, cols = np.mgrid[:11, :11] - 5.0
    assert sb.sum() == pytest.approx(1.0, abs=1e-12)
    assert (sb * cols).sum() == pytest.approx(dx, abs=1e-12)
    assert (sb * rows).sum() == pytest.approx(dy, abs=1e-12)
    smooth = 1 / 12 - 2 / 360
    assert (sb * cols**2).sum() == pytest.approx(dx * dx - smooth, abs=1e-12)
    assert (sb * rows**2).sum() == pytest.approx(dy * dy - smooth, abs=1e-12)
    assert (sb * rows * cols).sum() == pytest.approx(dx * dy, abs=1e-12)


def test_patterns_leave_smooth_light_alone():
    """Refined cells whose moments are those of the grid's own smooth (linear) light get no correction."""
    rows, cols = np.mgrid[:9, :9].astype(float)
    sb = 3.0 + 0.2 * cols - 0.1 * rows
    before = sb.copy()
    r, c = np.array([3, 4, 5]), np.array([4, 4, 6])
    mean = sb[r, c]
    mom = np.stack([np.full(3, 0.2 / 12), np.full(3, -0.1 / 12), mean / 12, mean / 12, np.zeros(3)])
    _add_subcell_moments(sb, r, c, mom)
    np.testing.assert_allclose(sb, before, atol=1e-12)
