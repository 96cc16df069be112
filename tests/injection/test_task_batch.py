"""inject_batch: a row's output does not depend on its batch; a row that breaks the batch render fails alone;
stage 4c's column-wise Arrow output equals the row-wise conversion."""

from __future__ import annotations

import pyarrow as pa

from dhs.injection import task as task_mod
from dhs.injection.schema import output_schema
from dhs.injection.task import inject_batch, inject_task
from dhs.stages.stage4c import rows_to_batch
from tests.injection.tiny_sky import MANIFEST_SCHEMA, make_row


def _rows(wcs):
    """Sersic rows of several shapes and stamp sizes, a control, a bad manifest row."""
    rows = []
    for i in range(9):
        rows.append(make_row(wcs, x=60.3 + 4 * i, y=70.8 + 3 * i, task_id=f"s{i}", task_seed=1000 + i,
                             theta_e_arcsec=0.6 + 0.2 * i, src_n_sersic=0.7 + 0.4 * i,
                             src_reff_arcsec=0.08 + 0.05 * i, stamp_size=48 if i % 4 == 3 else 64))
    rows.append(make_row(wcs, task_id="control", is_control=1, lens_model="CONTROL"))
    rows.append(make_row(wcs, task_id="bad", src_reff_arcsec=-1.0))
    rows.append(make_row(wcs, task_id="target", target_arc_snr_sum=25.0, src_mag_r=None))
    return rows


def _cut(store, row):
    return store.cutout(row["ra"], row["dec"], size=row["stamp_size"], brickname=row["brickname"])


def test_rows_equal_their_single_row_outputs_in_any_batch(brick, store, settings):
    rows = _rows(brick[1])
    cuts = [_cut(store, r) for r in rows]
    together = inject_batch(rows, cuts, None, settings)
    assert [r["task_id"] for r in together] == [r["task_id"] for r in rows]
    alone = [inject_task(r, c, None, settings) for r, c in zip(rows, cuts)]
    halves = (inject_batch(rows[::2], cuts[::2], None, settings)
              + inject_batch(rows[1::2], cuts[1::2], None, settings))
    by_id = {r["task_id"]: r for r in halves}
    for a, b in zip(together, alone):
        assert a == b
        assert by_id[a["task_id"]] == a
    assert together[-2]["cutout_ok"] == 0 and together[-2]["error"].startswith("bad_manifest:src_reff_arcsec")
    assert sum(r["cutout_ok"] for r in together) == len(rows) - 1


def test_a_row_that_breaks_the_batch_render_fails_alone(brick, store, settings, monkeypatch):
    rows = _rows(brick[1])[:6]
    poison = 0.6 + 0.2 * 2
    real = task_mod.render_lensed_batch

    def fragile(lenses, *a, **k):
        if any(abs(lens.theta_e - poison) < 1e-12 for lens in lenses):
            raise FloatingPointError("poisoned row")
        return real(lenses, *a, **k)

    monkeypatch.setattr(task_mod, "render_lensed_batch", fragile)
    out = inject_batch(rows, [_cut(store, r) for r in rows], None, settings)
    assert out[2]["cutout_ok"] == 0 and out[2]["error"] == "internal_error:FloatingPointError: poisoned row"
    assert [r["cutout_ok"] for i, r in enumerate(out) if i != 2] == [1] * 5
    monkeypatch.setattr(task_mod, "render_lensed_batch", real)
    clean = inject_batch(rows, [_cut(store, r) for r in rows], None, settings)
    assert [r for i, r in enumerate(out) if i != 2] == [r for i, r in enumerate(clean) if i != 2]


def test_column_wise_arrow_output_equals_row_wise(brick, store, settings):
    rows = _rows(brick[1])
    out = inject_batch(rows, [_cut(store, r) for r in rows], None, settings)
    schema = output_schema(MANIFEST_SCHEMA, settings.keep_arrays, settings.stamp_npz)
    assert rows_to_batch(out, schema).equals(pa.RecordBatch.from_pylist(out, schema=schema))
    assert rows_to_batch([], schema).num_rows == 0
