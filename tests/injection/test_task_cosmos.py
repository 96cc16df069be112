"""COSMOS sources in inject_task: deterministic template/rotation, flux = requested × magnification, colours."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.cosmos.bank import CosmosBank, write_bank
from dhs.injection.task import inject_task
from dhs.io.stamps import decode
from tests.injection.tiny_sky import make_row


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Five smooth elliptical templates (0.03″ pixels) with catalogue colours."""
    n, size, pix = 5, 64, 0.03
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2
    imgs = []
    for i in range(n):
        q = 0.4 + 0.1 * i
        r2 = xx**2 + (yy / q) ** 2
        imgs.append(np.exp(-np.sqrt(r2) / (2.0 + i)) + 0.3 * np.exp(-((xx - 6) ** 2 + yy**2) / 4.0))
    meta = {"hlr_arcsec": np.array([0.1, 0.12, 0.14, 0.16, 0.18]), "color_gr": np.array([0.5, 0.8, np.nan, 1.2, 1.4]),
            "color_rz": np.array([0.3, 0.4, np.nan, 0.6, 0.7])}
    path = tmp_path_factory.mktemp("bank") / "bank.h5"
    write_bank(path, np.array(imgs), meta, {"pixscale_arcsec": pix})
    return CosmosBank.open(path)


def _cosmos_row(brick, **kw):
    base = {"source_mode": "cosmos", "cosmos_index": -1, "src_reff_arcsec": None, "src_mag_r": 21.5,
            "theta_e_arcsec": 1.0, "src_x_arcsec": 0.15, "src_y_arcsec": -0.1}
    return make_row(brick[1], **{**base, **kw})


def _run(store, row, bank, settings):
    cut = store.cutout(row["ra"], row["dec"], 64, row["brickname"])
    return inject_task(row, cut, bank, settings)


@pytest.mark.parametrize("colours", ["manifest", "template"])
def test_flux_is_requested_times_magnification(brick, store, bank, settings, colours):
    s = settings.model_copy(update={"cosmos_colours": colours})
    for seed in (1, 2, 3, 4):
        out = _run(store, _cosmos_row(brick, task_seed=seed), bank, s)
        assert out["cutout_ok"] == 1, out["error"]
        idx = out["cosmos_index"]
        assert 0 <= idx < 5
        gr_t, rz_t = bank.colours(idx)
        if colours == "template" and np.isfinite(gr_t):
            assert (out["src_gr_used"], out["src_rz_used"]) == pytest.approx((gr_t, rz_t))
        else:
            assert (out["src_gr_used"], out["src_rz_used"]) == pytest.approx((1.15, 0.85))
        mu = out["magnification"]
        for b in "grz":
            requested = out[f"src_flux_{b}"]
            assert out[f"total_injected_flux_{b}"] == pytest.approx(requested * mu, rel=0.01)
        ratio_gr = out["total_injected_flux_g"] / out["total_injected_flux_r"]
        assert ratio_gr == pytest.approx(10 ** (-0.4 * out["src_gr_used"]), rel=0.01)
        assert out["src_flux_r"] == pytest.approx(10 ** (-0.4 * (21.5 - 22.5)))


def test_deterministic_and_seed_dependent(brick, store, bank, settings):
    a = _run(store, _cosmos_row(brick, task_seed=77), bank, settings)
    b = _run(store, _cosmos_row(brick, task_seed=77), bank, settings)
    assert a["stamp"] == b["stamp"] and a["src_rotation_rad"] == b["src_rotation_rad"]
    others = {(_run(store, _cosmos_row(brick, task_seed=s), bank, settings)["src_rotation_rad"]) for s in range(6)}
    assert len(others) == 6
    fixed = _run(store, _cosmos_row(brick, task_seed=77, cosmos_index=3), bank, settings)
    assert fixed["cosmos_index"] == 3


def test_hlr_target_scales_template(brick, store, bank, settings):
    out = _run(store, _cosmos_row(brick, task_seed=5, cosmos_index=1, src_hlr_target_arcsec=0.36), bank, settings)
    assert out["src_scale"] == pytest.approx(3.0)
    assert decode(out["arc"], size=64).sum() > 0


def test_missing_bank_and_bad_index(brick, store, bank, settings):
    out = _run(store, _cosmos_row(brick), None, settings)
    assert out["cutout_ok"] == 0 and out["error"].startswith("cosmos_bank_missing")
    out = _run(store, _cosmos_row(brick, cosmos_index=99), bank, settings)
    assert out["cutout_ok"] == 0 and out["error"].startswith("bad_manifest")
