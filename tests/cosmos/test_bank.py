"""Bank file writer and reader: layout, lazy/full access, errors for non-bank files, S3 download cache."""

from __future__ import annotations

import os
import pickle

import boto3
import h5py
import numpy as np
import pytest

from dhs.cosmos import bank as bank_mod
from dhs.cosmos.bank import BANK_FORMAT, CosmosBank, CosmosBankError, write_bank


def synthetic_images(n: int = 5, size: int = 32, seed: int = 11) -> np.ndarray:
    """Elliptical Gaussians of different sizes, arbitrary normalisation."""
    rng = np.random.Generator(np.random.PCG64(seed))
    yy, xx = np.indices((size, size)) - (size - 1) / 2.0
    out = []
    for _ in range(n):
        s1, s2 = rng.uniform(1.5, 5.0, 2)
        out.append(rng.uniform(0.5, 50.0) * np.exp(-0.5 * ((xx / s1) ** 2 + (yy / s2) ** 2)))
    return np.stack(out)


@pytest.fixture()
def small_bank(tmp_path):
    imgs = synthetic_images()
    meta = {"hlr_arcsec": np.linspace(0.1, 0.5, 5), "color_gr": np.array([0.5, np.nan, 0.2, 0.3, 0.4]),
            "color_rz": np.array([0.4, 0.1, 0.3, 0.2, 0.1]), "catalog_index": np.arange(5, dtype=np.int64)}
    path = tmp_path / "small.h5"
    write_bank(path, imgs, meta, {"pixscale_arcsec": 0.05, "source_catalog": "synthetic",
                                  "build_params": {"kind": "gaussians"}})
    return path, imgs, meta


@pytest.mark.parametrize("lazy", [True, False])
def test_write_and_read_back(small_bank, lazy):
    path, imgs, _meta = small_bank
    b = CosmosBank.open(path, lazy=lazy)
    assert b.n == 5 and len(b) == 5 and b.pixscale == 0.05 and b.stamp_size == 32
    for i in range(5):
        t = b.template(i)
        assert t.dtype == np.float32 and abs(float(t.astype(np.float64).sum()) - 1.0) < 1e-6
        np.testing.assert_allclose(t, imgs[i] / imgs[i].sum(), rtol=1e-6, atol=1e-12)
    assert b.hlr(2) == pytest.approx(0.3)
    gr, rz = b.colours(1)
    assert np.isnan(gr) and rz == pytest.approx(0.1)
    assert b.meta.column("catalog_index").to_pylist() == [0, 1, 2, 3, 4]
    assert b.attrs["format"] == BANK_FORMAT and b.attrs["source_catalog"] == "synthetic"
    assert b.build_params == {"kind": "gaussians"} and b.attrs["created_utc"].endswith("Z")
    with pytest.raises(IndexError, match="out of range"):
        b.template(5)
    with pytest.raises(KeyError, match="no meta column 'snr'"):
        b.column("snr")
    b2 = pickle.loads(pickle.dumps(b))
    np.testing.assert_array_equal(b2.template(4), b.template(4))
    b.close()


def test_h5_layout_is_chunked_and_compressed(small_bank):
    path, _, _ = small_bank
    with h5py.File(path, "r") as f:
        ds = f["images"]
        assert ds.shape == (5, 32, 32) and ds.dtype == np.float32
        assert ds.chunks == (1, 32, 32) and ds.compression == "gzip"
        for k in ("pixscale_arcsec", "stamp_size", "created_utc", "dhs_version", "source_catalog", "build_params"):
            assert k in f.attrs


def test_write_bank_rejects_bad_input(tmp_path):
    imgs = synthetic_images(2)
    with pytest.raises(ValueError, match="pixscale_arcsec"):
        write_bank(tmp_path / "a.h5", imgs, {}, {})
    bad = imgs.copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="template 1 has non-finite"):
        write_bank(tmp_path / "a.h5", bad, {}, {"pixscale_arcsec": 0.03})
    with pytest.raises(ValueError, match="meta column 'x' has shape"):
        write_bank(tmp_path / "a.h5", imgs, {"x": np.zeros(3)}, {"pixscale_arcsec": 0.03})
    with pytest.raises(ValueError, match="missing columns"):
        write_bank(tmp_path / "a.h5", imgs, {}, {"pixscale_arcsec": 0.03}, require_columns=True)
    assert not list(tmp_path.iterdir())


def test_clear_errors_for_files_that_are_not_banks(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        CosmosBank.open(tmp_path / "nope.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(CosmosBankError, match="not an HDF5 file"):
        CosmosBank.open(txt)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["images"] = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(CosmosBankError, match=r"other\.h5: not a COSMOS source bank \(attribute 'format'"):
        CosmosBank.open(other)
    with h5py.File(other, "a") as f:
        f.attrs["format"] = BANK_FORMAT
    with pytest.raises(CosmosBankError, match="missing attribute 'pixscale_arcsec'"):
        CosmosBank.open(other)


@pytest.mark.s3
def test_open_from_s3_downloads_once(small_bank, monkeypatch, s3_endpoint):
    # (the session's S3 server, tests/conftest.py: an in-process mock_aws() would reset its buckets on exit)
    path, imgs, _ = small_bank
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(bank_mod, "_S3_CACHE", {})
    monkeypatch.setattr(bank_mod, "_cache_dir", lambda: str(path.parent / "s3cache"))
    os.makedirs(path.parent / "s3cache")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="banks")
    s3.upload_file(str(path), "banks", "cosmos/bank.h5")
    b = CosmosBank.open("s3://banks/cosmos/bank.h5", s3_endpoint_url=s3_endpoint)
    np.testing.assert_allclose(b.template(0), imgs[0] / imgs[0].sum(), rtol=1e-6, atol=1e-12)
    local = b.path
    # the object disappears from S3: a second open in this process must use the cached copy
    s3.delete_object(Bucket="banks", Key="cosmos/bank.h5")
    b2 = CosmosBank.open("s3://banks/cosmos/bank.h5", lazy=False, s3_endpoint_url=s3_endpoint)
    assert b2.path == local and b2.n == 5
    with pytest.raises(CosmosBankError, match="cannot download COSMOS bank s3://banks/missing.h5"):
        CosmosBank.open("s3://banks/missing.h5", s3_endpoint_url=s3_endpoint)
    # another worker process on the same machine (empty in-process cache) reuses the file while the
    # object is unchanged, and fetches again when it changed
    s3.upload_file(str(path), "banks", "cosmos/bank.h5")
    monkeypatch.setattr(bank_mod, "_S3_CACHE", {})
    before = os.stat(local).st_mtime_ns
    assert CosmosBank.open("s3://banks/cosmos/bank.h5", s3_endpoint_url=s3_endpoint).path == local
    assert os.stat(local).st_mtime_ns == before
    other = path.parent / "other.h5"
    write_bank(other, imgs[::-1], {}, {"pixscale_arcsec": 0.05})
    s3.upload_file(str(other), "banks", "cosmos/bank.h5")
    monkeypatch.setattr(bank_mod, "_S3_CACHE", {})
    b3 = CosmosBank.open("s3://banks/cosmos/bank.h5", s3_endpoint_url=s3_endpoint)
    np.testing.assert_allclose(b3.template(0), imgs[4] / imgs[4].sum(), rtol=1e-6, atol=1e-12)
    # a pickled S3 bank whose local copy is gone (another machine) fetches it again
    state = pickle.dumps(b3)
    b3.close()
    os.remove(local)
    monkeypatch.setattr(bank_mod, "_S3_CACHE", {})
    b4 = pickle.loads(state)
    assert os.path.exists(b4.path) and b4.n == 5
