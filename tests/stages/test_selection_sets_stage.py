"""Selection sets in local Spark: stage 3's ``host_selection_sets`` (the region's sets whose LRG variant
the galaxy passes) and stage 4a building one manifest per selection set, a ``selection_set_id`` on every row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dhs.io.stage_meta import read_stage_config
from tests.sampling.fake_hosts import fake_parent
from tests.stages.test_stage4a import _cfg, _read, _write_parent

pytestmark = pytest.mark.spark


def test_stage3_host_selection_sets_follow_the_set_variant(stage3_result, debug_config):
    parent = pq.read_table(stage3_result.output_path).to_pandas()
    counts = read_stage_config(stage3_result.output_path)["counts"]
    set_variant = counts["selection_set_variant"]
    assert set(set_variant) == set(counts["selection_set_ids"]) and set(set_variant.values()) == {debug_config.variant}
    for sets, hosts, flag in zip(parent["selection_sets"], parent["host_selection_sets"],
                                 parent[f"is_lrg_{debug_config.variant}"]):
        assert list(hosts) == ([s for s in sets] if flag else [])
    assert any(len(h) for h in parent["host_selection_sets"])


@pytest.mark.slow
def test_stage4a_one_manifest_per_selection_set(spark, tmp_path):
    from dhs.stages import stage4a

    t = fake_parent(400, seed=13)
    rng = np.random.default_rng(2)
    a, b = "topk_density_k100__v2_baseline_dr10", "topk_n_lrg_k100__v3_color_relaxed"
    member = [[s for s, keep in ((a, rng.random() < 0.7), (b, rng.random() < 0.5)) if keep] for _ in range(t.num_rows)]
    t = t.append_column("host_selection_sets", pa.array(member, type=pa.list_(pa.string())))
    root = str(tmp_path)
    _write_parent(root, "v2_baseline_dr10", t, 3)
    res = stage4a.run(spark, _cfg(root, selection_sets="all", null_fraction=0.1))
    man = _read(res.output_path).to_pandas()
    assert set(man["selection_set_id"]) == {a, b} and man["selection_set_id"].notna().all()
    hosts = {(g, s) for g, ms in zip(t.column("galaxy_id").to_pylist(), member) for s in ms}
    assert all((g, s) in hosts for g, s in zip(man["galaxy_id"], man["selection_set_id"]))
    assert man["task_id"].is_unique
    assert all(tid.startswith(f"unit/{s}/") for tid, s, c in zip(man["task_id"], man["selection_set_id"],
                                                                 man["is_control"]) if c == 0)
    set_of = dict(zip(man["task_id"], man["selection_set_id"]))
    ctl = man[man["is_control"] == 1]
    assert all(set_of[p] == s for p, s in zip(ctl["control_of"], ctl["selection_set_id"]))
    assert (man["lens_model"] == "NULL").sum() > 0
    counts = read_stage_config(res.output_path)["counts"]
    assert set(counts["per_selection_set"]) == {a, b}
    assert counts["rows_null"] == int((man["lens_model"] == "NULL").sum())
    with pytest.raises(ValueError, match="not found"):
        stage4a.run(spark, _cfg(root, selection_sets=["nope"]).model_copy(update={"force": True}))
