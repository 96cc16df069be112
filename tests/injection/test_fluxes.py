"""Per-band source fluxes from the r magnitude and colours."""

import numpy as np
import pytest

from dhs.injection.fluxes import band_fluxes


def test_colours_to_fluxes():
    f = band_fluxes(22.5, 1.0, 0.5)
    # m_g = 23.5, m_r = 22.5, m_z = 22.0  →  flux = 10^(-0.4 (m - 22.5)) nanomaggies
    assert f.flux == pytest.approx([10 ** -0.4, 1.0, 10 ** 0.2], rel=1e-12)
    assert (f.gr, f.rz, f.mag_r) == (1.0, 0.5, 22.5)
    assert 22.5 - 2.5 * np.log10(f.flux[0]) - (22.5 - 2.5 * np.log10(f.flux[1])) == pytest.approx(1.0)


def test_explicit_band_mags_win():
    f = band_fluxes(24.0, 1.0, 0.5, mag_g=24.3, mag_z=23.0)
    assert f.gr == pytest.approx(0.3) and f.rz == pytest.approx(1.0)


def test_scaled_keeps_colours_moves_mag():
    f = band_fluxes(24.0, 1.2, 0.8).scaled(10.0)
    assert f.mag_r == pytest.approx(21.5)
    assert f.flux[0] / f.flux[1] == pytest.approx(10 ** (-0.4 * 1.2))
    with pytest.raises(ValueError):
        f.scaled(0.0)


def test_infinite_mag_is_zero_flux():
    assert band_fluxes(np.inf, 1.0, 0.5).flux.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("args,match", [((np.nan, 1.0, 0.5), "src_mag_r"), ((23.0, None, 0.5), "src_gr"),
                                        ((23.0, 1.0, np.nan), "src_rz")])
def test_missing_inputs_named(args, match):
    with pytest.raises(ValueError, match=match):
        band_fluxes(*args)
