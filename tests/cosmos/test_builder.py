"""Bank builder on the real 100-galaxy COSMOS catalogue (GalSim RealGalaxyCatalog format)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import galsim
import h5py
import numpy as np
import pytest
from astropy.io import fits

from dhs.cosmos.bank import META_COLUMNS, CosmosBank
from dhs.cosmos.builder import CatalogError, build_bank, half_light_radius, light_centroid, resolve_catalog

from .conftest import N_TEST, SEED

CAT = "real_galaxy_catalog_26_extension_example.fits"


def _content(path: Path) -> tuple[dict, dict]:
    """Every dataset (as arrays) and every attribute except the creation time."""
    data: dict = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: data.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k != "created_utc"}
    return data, attrs


def test_bank_templates_and_measurements(built_bank):
    path, res = built_bank
    bank = CosmosBank.open(path, lazy=False)
    assert bank.n == N_TEST == res.n_kept
    assert bank.stamp_size == 96 and bank.pixscale == pytest.approx(0.03)
    hlr = bank.column("hlr_arcsec")
    for i in range(bank.n):
        t = bank.template(i)
        assert t.dtype == np.float32 and t.shape == (96, 96)
        assert np.all(np.isfinite(t)) and t.min() >= 0.0
        assert abs(t.astype(np.float64).sum() - 1.0) < 1e-6
        # light centred on the template centre ((n-1)/2) to a fraction of a pixel
        cx, cy = light_centroid(t)
        assert abs(cx) < 0.5 and abs(cy) < 0.5, (i, cx, cy)
        # re-measure the half-light radius with GalSim's own estimator about the centroid
        im = galsim.Image(t.astype(np.float64), scale=bank.pixscale)
        centre = galsim.PositionD(im.true_center.x + cx, im.true_center.y + cy)
        hlr_gs = im.calculateHLR(center=centre)
        assert hlr[i] == pytest.approx(hlr_gs, abs=0.5 * bank.pixscale), i
        assert hlr[i] == pytest.approx(half_light_radius(t, bank.pixscale), rel=1e-6)
    assert np.all((hlr >= 0.1) & (hlr <= 1.0))


def test_bank_metadata_matches_catalogue(built_bank, cosmos_dir):
    path, _ = built_bank
    bank = CosmosBank.open(path)
    for col in META_COLUMNS:
        assert bank.column(col).shape == (bank.n,), col
    cat = fits.getdata(cosmos_dir / CAT, 1)
    comp = fits.getdata(cosmos_dir / CAT.replace(".fits", "_fits.fits"), 1)
    idx = bank.column("catalog_index")
    assert len(np.unique(idx)) == bank.n
    np.testing.assert_array_equal(bank.column("ident"), cat["IDENT"][idx])
    np.testing.assert_allclose(bank.column("mag_f814w"), cat["MAG"][idx])
    row = {int(v): k for k, v in enumerate(comp["IDENT"])}
    crow = np.array([row[int(v)] for v in cat["IDENT"][idx]])
    np.testing.assert_allclose(bank.column("color_gr"), comp["HSC_g"][crow] - comp["HSC_r"][crow], atol=1e-9)
    np.testing.assert_allclose(bank.column("color_rz"), comp["HSC_r"][crow] - comp["HSC_z"][crow], atol=1e-9)
    np.testing.assert_allclose(bank.column("photo_z"), comp["ZPHOT"][crow])
    gr, rz = bank.colours(3)
    assert gr == pytest.approx(bank.column("color_gr")[3]) and rz == pytest.approx(bank.column("color_rz")[3])
    assert np.all(np.isfinite(bank.column("clumpiness"))) and np.all(bank.column("clumpiness") >= 0)
    for key in ("pixscale_arcsec", "stamp_size", "created_utc", "dhs_version", "source_catalog", "build_params",
                "format", "colour_source"):
        assert key in bank.attrs, key
    assert bank.attrs["colour_source"] == "hsc"
    assert bank.attrs["source_catalog"].endswith(CAT)
    assert bank.build_params["seed"] == SEED and bank.build_params["n"] == N_TEST
    assert bank.build_params["hlr_min"] == 0.1 and bank.build_params["stamp_size"] == 96
    meta = bank.meta
    assert meta.num_rows == bank.n and set(META_COLUMNS) <= set(meta.column_names)


@pytest.mark.slow
def test_rebuild_same_seed_is_identical_and_seed_matters(built_bank, cosmos_dir, tmp_path):
    path, _ = built_bank
    again = tmp_path / "again.h5"
    build_bank(cosmos_dir / CAT, again, n=N_TEST, seed=SEED, checkpoint_every=50)
    d1, a1 = _content(path)
    d2, a2 = _content(again)
    assert a1.keys() == a2.keys()
    for k in a1:
        if k != "source_catalog":
            assert a1[k] == a2[k], k
    assert d1.keys() == d2.keys()
    for k in d1:
        np.testing.assert_array_equal(d1[k], d2[k], err_msg=k)
    other = tmp_path / "other.h5"
    build_bank(cosmos_dir, other, n=5, seed=SEED + 1)
    assert not np.array_equal(CosmosBank.open(other).column("ident"), d1["meta/ident"][:5])


class Interrupted(Exception):
    """Stands for a killed build."""


def test_interrupted_build_resumes_to_the_same_bank(built_bank, cosmos_dir, tmp_path):
    path, _ = built_bank
    out = tmp_path / "resumed.h5"
    calls = []

    def crash_after_two(visited: int, kept: int, total: int) -> None:
        calls.append(visited)
        if len(calls) == 2:
            raise Interrupted("simulated interruption")

    with pytest.raises(Interrupted):
        build_bank(cosmos_dir, out, n=N_TEST, seed=SEED, checkpoint_every=8, progress=crash_after_two)
    assert not out.exists()
    assert len(list(Path(f"{out}.ckpt").glob("part-*.npz"))) == 2
    res = build_bank(cosmos_dir, out, n=N_TEST, seed=SEED, checkpoint_every=8)
    assert res.resumed_from == 16
    assert not Path(f"{out}.ckpt").exists()
    d1, _ = _content(path)
    d2, _ = _content(out)
    for k in d1:
        np.testing.assert_array_equal(d1[k], d2[k], err_msg=k)
    # checkpoints made with other parameters are refused
    calls.clear()
    with pytest.raises(Interrupted):
        build_bank(cosmos_dir, out, n=N_TEST, seed=SEED, checkpoint_every=8, progress=crash_after_two)
    with pytest.raises(RuntimeError, match="different parameters"):
        build_bank(cosmos_dir, out, n=N_TEST, seed=SEED, hlr_max=0.8, checkpoint_every=8)
    build_bank(cosmos_dir, out, n=5, seed=SEED, hlr_max=0.8, checkpoint_every=8, restart=True)
    assert CosmosBank.open(out).n == 5


def test_cuts_are_applied(cosmos_dir, tmp_path):
    out = tmp_path / "cut.h5"
    res = build_bank(cosmos_dir, out, seed=1, hlr_min=0.15, hlr_max=0.25, mag_max=25.0)
    bank = CosmosBank.open(out)
    hlr = bank.column("hlr_arcsec")
    assert bank.n == res.n_kept > 5
    assert np.all((hlr >= 0.15) & (hlr <= 0.25)) and np.all(bank.column("mag_f814w") <= 25.0)
    assert res.rejects["hlr_out_of_range"] > 0 and res.rejects["mag_out_of_range"] > 0
    assert res.n_kept + sum(res.rejects.values()) == res.n_catalog == 100


def test_refuses_missing_catalogue(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        build_bank(tmp_path / "nope", tmp_path / "b.h5")
    with pytest.raises(CatalogError, match="no real_galaxy_catalog"):
        resolve_catalog(tmp_path)


def test_refuses_catalogue_with_missing_image_files(shared_data, cosmos_dir, tmp_path):
    # real catalogue shipped without its PSF file (paltas test data)
    with pytest.raises(CatalogError, match=r"real_galaxy_PSF_images_23\.5_n1\.fits \(PSF_FILENAME\)"):
        build_bank(shared_data / "cosmos-extra" / "paltas", tmp_path / "b.h5")
    # a copy of the good catalogue whose galaxy image file was removed
    for name in os.listdir(cosmos_dir):
        if name != "real_galaxy_images_extension.fits":
            shutil.copy(cosmos_dir / name, tmp_path / name)
    with pytest.raises(CatalogError, match=r"real_galaxy_images_extension\.fits \(GAL_FILENAME\) first needed by row 0"):
        build_bank(tmp_path, tmp_path / "b.h5")
    assert not (tmp_path / "b.h5").exists()


def test_second_real_catalogue_without_colours(shared_data, tmp_path):
    """GalSim's own AEGIS F814W test catalogue (no companion table): builds, colours are NaN."""
    cat = shared_data / "cosmos-extra" / "galsim-tests" / "AEGIS_F814w_catalog.fits"
    build_bank(cat, tmp_path / "aegis.h5", min_snr=0)
    bank = CosmosBank.open(tmp_path / "aegis.h5")
    assert bank.n >= 3 and bank.attrs["colour_source"] == "none"
    assert np.all(np.isnan(bank.column("color_gr"))) and np.all(np.isfinite(bank.column("mag_f814w")))
    assert np.isnan(bank.colours(0)[0])


def test_cli_build(cosmos_dir, tmp_path, capsys):
    from dhs.cli import main

    out = tmp_path / "cli.h5"
    rc = main(["cosmos-bank", "build", "--catalog", str(cosmos_dir), "--out", str(out), "--n", "4",
               "--seed", "5", "--stamp-size", "64", "--pixscale", "0.04", "--hlr-min", "0.12", "--hlr-max", "0.9"])
    assert rc == 0
    assert "kept 4" in capsys.readouterr().out
    bank = CosmosBank.open(out)
    assert bank.n == 4 and bank.stamp_size == 64 and bank.pixscale == pytest.approx(0.04)
    assert np.all(bank.column("hlr_arcsec") >= 0.12)
    rc = main(["cosmos-bank", "build", "--catalog", str(tmp_path / "missing"), "--out", str(out)])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
