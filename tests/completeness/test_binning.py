"""Floor-rule bins labelled by lower edge; explicit-edge bins."""

import numpy as np
import pytest

from dhs.completeness.binning import edge_bin, edge_bin_index, edge_bin_labels, floor_bin


def test_floor_bin_lower_edge_and_float_grid_values():
    v = [0.0, 0.049, 0.05, 0.25, 0.3, 0.35, 0.7, 1.2, 2.5, -0.01]
    got = floor_bin(v, 0.05)
    np.testing.assert_array_equal(got, [0.0, 0.0, 0.05, 0.25, 0.3, 0.35, 0.7, 1.2, 2.5, -0.05])
    # 0.3 / 0.1 = 2.9999999999999996 in floating point: must still be labelled 0.3
    assert floor_bin([0.3, 0.7, 0.6], 0.1).tolist() == [0.3, 0.7, 0.6]
    # every value sits in [label, label + width)
    rng = np.random.default_rng(1)
    x = rng.uniform(-5, 30, 10_000)
    lab = floor_bin(x, 0.25)
    assert np.all(lab <= x + 1e-9) and np.all(x < lab + 0.25 + 1e-9)


def test_floor_bin_nulls_and_bad_width():
    got = floor_bin([None, np.nan, 1.26], 0.5)
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == 1.0
    with pytest.raises(ValueError, match="width"):
        floor_bin([1.0], 0.0)


def test_edge_bins_resolution_default_edges():
    edges = [0.4, 0.6, 0.8, 1.0]
    assert edge_bin_labels(edges) == ["<0.4", "0.4-0.6", "0.6-0.8", "0.8-1", ">=1"]
    v = [0.1, 0.4, 0.59999, 0.6, 0.8, 0.99, 1.0, 7.0, np.nan]
    np.testing.assert_array_equal(edge_bin_index(v, edges), [0, 1, 1, 2, 3, 3, 4, 4, -1])
    lab, lo = edge_bin(v, edges)
    assert list(lab) == ["<0.4", "0.4-0.6", "0.4-0.6", "0.6-0.8", "0.8-1", "0.8-1", ">=1", ">=1", "nan"]
    assert lo[0] == -np.inf and lo[3] == 0.6 and lo[4] == 0.8 and np.isnan(lo[-1])
    with pytest.raises(ValueError, match="increasing"):
        edge_bin([1.0], [0.6, 0.4])
