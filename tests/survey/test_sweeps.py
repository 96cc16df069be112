"""Sweep/tractor reader on the real DR8 and DR9 files and on synthetic edge cases."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from dhs.survey.bricks import brick_by_name
from dhs.survey.sweeps import SWEEP_COLUMNS, SweepSchemaError, read_sweep, sweep_nrows, table_notes

DR8 = ["sweep-310m005-320p000.fits", "sweep-320m005-330p000.fits", "sweep-330m005-340p000.fits",
       "tractor-3301m002.fits", "tractor-3301m007.fits", "tractor-3303p000.fits"]


@pytest.fixture(scope="module")
def dr8_dir(shared_data):
    return shared_data / "legacysurvey" / "dr8-south-rows"


@pytest.mark.parametrize("name", DR8)
def test_dr8_rows_read_with_mapping(dr8_dir, name):
    path = dr8_dir / name
    t = read_sweep(str(path), columns=SWEEP_COLUMNS, mags=("g", "r", "z", "w1"))
    assert t.num_rows == 6
    assert t.column_names == list(SWEEP_COLUMNS) + ["mag_g", "mag_r", "mag_z", "mag_w1"]
    raw = fits.getdata(path, 1)
    types = t.column("type").to_pylist()
    assert types == [s.strip() for s in raw["TYPE"]]
    assert all(isinstance(s, str) and s == s.strip() for s in types)
    assert t.column("brickname").to_pylist() == list(raw["BRICKNAME"])
    assert np.array_equal(t.column("flux_r").to_numpy(), raw["FLUX_R"].astype(np.float32))
    assert np.array_equal(t.column("ra").to_numpy(), raw["RA"].astype(np.float64))
    assert np.allclose(t.column("mag_r").to_numpy(), 22.5 - 2.5 * np.log10(raw["FLUX_R"].astype(np.float64)),
                       rtol=0, atol=1e-12, equal_nan=True)
    # DR8 → DR10 shape mapping, row by row from the raw columns
    shape_r = t.column("shape_r").to_numpy()
    sersic = t.column("sersic").to_numpy()
    for i, ty in enumerate(types):
        want = {"DEV": raw["SHAPEDEV_R"][i], "EXP": raw["SHAPEEXP_R"][i], "REX": raw["SHAPEEXP_R"][i],
                "PSF": 0.0}[ty]
        assert shape_r[i] == np.float32(want), (name, i, ty)
        assert sersic[i] == {"DEV": 4.0, "EXP": 1.0, "REX": 1.0, "PSF": 0.0}[ty]
    assert np.isnan(t.column("psfsize_r").to_numpy()).all()
    notes = table_notes(t)
    assert any(n.startswith("shape_r: DR8 mapping") for n in notes)
    assert any(n.startswith("psfsize_g: absent") for n in notes)


def test_dr8_tractor_nprimary_is_outside_brick(dr8_dir):
    """The 12 of 18 tractor rows outside their brick are exactly those with NPRIMARY (brick_primary False)."""
    outside = 0
    for name in DR8[3:]:
        t = read_sweep(str(dr8_dir / name), columns=["brickname", "ra", "dec", "brick_primary", "maskbits"])
        for row in t.to_pylist():
            inside = brick_by_name(row["brickname"]).contains(row["ra"], row["dec"])
            assert row["brick_primary"] == inside
            assert bool(row["maskbits"] & 1) == (not inside)
            outside += not inside
    assert outside == 12


def test_dr9_row_181_columns(shared_data):
    path = shared_data / "legacysurvey/dr9-north-row/tractor-1054p567.fits"
    full = read_sweep(str(path), include_vector=True)
    assert full.num_columns == 181 and full.num_rows == 1
    assert all(c == c.lower() for c in full.column_names)
    assert full.schema.field("apflux_g").type == pa.list_(pa.float32(), 8)
    assert full.schema.field("lc_flux_w1").type == pa.list_(pa.float32(), 15)
    raw = fits.getdata(path, 1)
    assert np.array_equal(np.array(full.column("apflux_r")[0].as_py(), dtype=np.float32), raw["APFLUX_R"][0])
    scalar = read_sweep(str(path))
    vectors = {c.name.lower() for c in fits.open(path)[1].columns if c.format[0].isdigit() and "A" not in c.format}
    assert set(scalar.column_names) == set(full.column_names) - vectors
    assert "dchisq" in vectors and "dchisq" not in scalar.column_names
    t = read_sweep(str(path), columns=SWEEP_COLUMNS)
    row = t.to_pylist()[0]
    assert row["type"] == "REX" and row["sersic"] == pytest.approx(float(raw["SERSIC"][0]))
    assert row["shape_r"] == pytest.approx(float(raw["SHAPE_R"][0]))
    assert row["psfsize_r"] == pytest.approx(float(raw["PSFSIZE_R"][0]))
    assert table_notes(t) == []
    with pytest.raises(ValueError, match="vector column"):
        read_sweep(str(path), columns=["apflux_g"])


def test_missing_column_names_file_and_column(dr8_dir):
    path = str(dr8_dir / "targets.fits")
    with pytest.raises(SweepSchemaError) as err:
        read_sweep(path, columns=["ra", "dec", "type"])
    assert "targets.fits" in str(err.value) and "'TYPE'" in str(err.value)
    with pytest.raises(SweepSchemaError, match="NOT_A_COLUMN"):
        read_sweep(str(dr8_dir / DR8[0]), columns=["ra", "not_a_column"])


def test_targets_mags_nan_for_nonpositive_flux(dr8_dir):
    t = read_sweep(str(dr8_dir / "targets.fits"), columns=["ra", "dec", "flux_g", "flux_w1"], mags=("g", "w1"))
    assert t.num_rows == 1001 and t.column_names == ["ra", "dec", "flux_g", "flux_w1", "mag_g", "mag_w1"]
    for b in ("g", "w1"):
        f = t.column(f"flux_{b}").to_numpy()
        m = t.column(f"mag_{b}").to_numpy()
        assert np.array_equal(np.isnan(m), ~(f > 0))
        assert (f <= 0).sum() >= 1


def _write_table(path, cols, n):
    fits.BinTableHDU.from_columns(cols).writeto(path, overwrite=True)
    return str(path)


def test_bytes_type_comp_mapping_and_row_chunks(tmp_path):
    n = 6
    typ = np.array([b"COMP", b"COMP", b"PSF ", b"SER ", b"DEV ", b"REX "])
    cols = [
        fits.Column("TYPE", "4A", array=typ),
        fits.Column("RA", "D", array=np.arange(n, dtype=float)),
        fits.Column("FRACDEV", "E", array=np.array([0.7, 0.2, 0, 0, 1, 0], dtype=np.float32)),
        fits.Column("SHAPEDEV_R", "E", array=np.full(n, 2.0, dtype=np.float32)),
        fits.Column("SHAPEEXP_R", "E", array=np.full(n, 3.0, dtype=np.float32)),
    ]
    path = _write_table(tmp_path / "old.fits", cols, n)
    t = read_sweep(path, columns=["type", "shape_r", "sersic"])
    assert t.column("type").to_pylist() == ["COMP", "COMP", "PSF", "SER", "DEV", "REX"]
    assert t.column("shape_r").to_pylist() == [2.0, 3.0, 0.0, 3.0, 2.0, 3.0]
    s = t.column("sersic").to_numpy()
    assert np.isnan(s[0]) and np.isnan(s[3]) and list(s[[2, 4, 5]]) == [0.0, 4.0, 1.0]
    chunk = read_sweep(path, columns=["ra", "type"], rows=(2, 5))
    assert chunk.column("ra").to_pylist() == [2.0, 3.0, 4.0] and chunk.column("type").to_pylist()[0] == "PSF"
    assert sweep_nrows(path) == n
    with pytest.raises(ValueError, match="row range"):
        read_sweep(path, rows=(4, 9))
    with pytest.raises(ValueError, match="twice"):
        read_sweep(path, columns=["ra", "RA"])


def test_hdu1_must_be_table(tmp_path):
    p = tmp_path / "img.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3)))]).writeto(p)
    with pytest.raises(ValueError, match="HDU1 is not a binary table"):
        read_sweep(str(p))
    with pytest.raises(OSError, match="nope.fits"):
        read_sweep(str(tmp_path / "nope.fits"))


@pytest.mark.parametrize("kind", ["truncated", "junk"])
def test_corrupt_file_names_file(tmp_path, dr8_dir, kind):
    raw = (dr8_dir / DR8[0]).read_bytes()
    p = tmp_path / f"{kind}.fits"
    p.write_bytes(raw[: len(raw) // 2] if kind == "truncated" else b"not a fits file" * 50)
    with pytest.raises(OSError, match=f"cannot read sweep file .*{kind}.fits"):
        read_sweep(str(p), columns=["ra", "type"])


def test_reads_only_requested_columns(tmp_path):
    """Reading 2 of 60 columns of a 12 MB file allocates far less than the file (memory map)."""
    n = 50_000
    cols = [fits.Column(f"C{i:02d}", "E", array=np.full(n, i, dtype=np.float32)) for i in range(60)]
    path = _write_table(tmp_path / "wide.fits", cols, n)
    tracemalloc.start()
    t = read_sweep(path, columns=["c03", "c41"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert t.column_names == ["c03", "c41"] and t.column("c41").to_numpy()[-1] == 41.0
    assert peak < 4_000_000, peak  # file holds 12 MB of rows
