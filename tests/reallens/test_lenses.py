"""Known-lens tables: the real Stein et al. / SLACS tables, column configuration, errors, lenscat."""

from __future__ import annotations

import csv
import sys
import types

import numpy as np
import pytest
from astropy.table import Table

from dhs.io.lens_tables import LensTableError, lenscat_table, read_lens_table


def test_real_tsv_tables_read_as_float64(shared_data):
    path = shared_data / "lenses" / "training_lenses.tsv"
    t = read_lens_table(path)
    assert len(t) == 1615
    assert t.ra.dtype == np.float64 and t.dec.dtype == np.float64
    with open(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    ref_ra = np.array([float(r["ra"]) for r in rows])
    ref_dec = np.array([float(r["dec"]) for r in rows])
    np.testing.assert_array_equal(t.ra, np.mod(ref_ra, 360.0))  # exact: no float32 round trip
    np.testing.assert_array_equal(t.dec, ref_dec)
    assert t.columns["grade"] is None and set(t.grade.tolist()) == {""}
    assert len(set(t.lens_id.tolist())) == 1615

    new = read_lens_table(shared_data / "lenses" / "new_lenses.tsv")
    assert len(new) == 1192
    assert set(new.grade.tolist()) == {"A", "B"}
    with open(shared_data / "lenses" / "new_lenses.tsv") as fh:
        grades = [r["grade"] for r in csv.DictReader(fh, delimiter="\t")]
    assert new.grade.tolist() == grades


def test_slacs_whitespace_table_with_names(shared_data):
    t = read_lens_table(shared_data / "lenses" / "SLACS_table.cat")
    assert len(t) == 59
    assert t.columns["ra"] == "RA" and t.columns["name"] == "name"
    assert t.lens_id[0] == "SDSSJ0029-0055"
    assert t.ra[0] == pytest.approx(7.282417, abs=0) and t.dec[0] == pytest.approx(-0.930694, abs=0)


def test_configured_columns_csv_and_fits(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("objname,alpha_x,delta_x,q,paper\nA1,10.5,-3.25,probable,Smith2020\nA2,359.9999999,89.9,,Doe\n")
    t = read_lens_table(p, ra="alpha_x", dec="delta_x", grade="q", reference="paper", name="objname")
    assert t.lens_id.tolist() == ["A1", "A2"]
    assert t.grade.tolist() == ["probable", ""]
    assert t.reference.tolist() == ["Smith2020", "Doe"]
    assert t.ra[1] == 359.9999999
    tab = Table({"RA": t.ra, "DEC": t.dec, "GRADE": ["A", "B"]})
    fp = tmp_path / "mine.fits"
    tab.write(fp)
    f = read_lens_table(fp)
    np.testing.assert_array_equal(f.ra, t.ra)
    assert f.grade.tolist() == ["A", "B"] and f.lens_id.tolist() == ["mine.fits:0", "mine.fits:1"]


def test_errors_name_file_row_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("ra,dec\n1.0,2.0\n3.0,95.0\n")
    with pytest.raises(LensTableError, match=r"bad.csv: row 1: column 'dec'"):
        read_lens_table(p)
    q = tmp_path / "nocol.csv"
    q.write_text("x,y\n1,2\n")
    with pytest.raises(LensTableError, match=r"nocol.csv: no ra column"):
        read_lens_table(q)
    with pytest.raises(LensTableError, match=r"column 'RAJ' \(stage6.lens_columns.ra\) not found"):
        read_lens_table(p, ra="RAJ")
    with pytest.raises(LensTableError, match="not found"):
        read_lens_table(tmp_path / "missing.csv")


def test_duplicate_names_made_unique(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text("name,ra,dec\nX,1,1\nX,2,2\nX,3,3\n")
    assert read_lens_table(p).lens_id.tolist() == ["X", "X#1", "X#2"]


def test_lenscat_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "lenscat", None)  # import fails like an absent package
    with pytest.raises(LensTableError, match="lenscat' is not installed"):
        lenscat_table()
    fake = types.ModuleType("lenscat")
    fake.catalog = Table({"name": ["J1", "J2"], "RA": [150.1, 20.2], "DEC": [2.2, -5.5],
                          "grading": ["confident", "probable"], "ref": ["r1", "r2"]})
    monkeypatch.setitem(sys.modules, "lenscat", fake)
    t = lenscat_table()
    assert t.lens_id.tolist() == ["J1", "J2"] and t.grade.tolist() == ["confident", "probable"]
    assert t.reference.tolist() == ["r1", "r2"] and t.source == "lenscat.catalog"
