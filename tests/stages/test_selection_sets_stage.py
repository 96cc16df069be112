"""Stage 3 + 4a in local Spark on the synthetic sky: selection sets as ranking modes × LRG variants, and a
``selection_set_id`` on every manifest row (one manifest per set, as the seed system built them)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import yaml

from dhs.config import config_from_dict
from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.slow]

VARIANTS = ["v2_baseline_dr10", "v3_color_relaxed", "v5_very_relaxed"]


@pytest.fixture(scope="module")
def set_config(synth_sky, tmp_path_factory):
    data = yaml.safe_load((REPO / "configs" / "debug.yaml").read_text())
    data.update(survey_root=synth_sky.survey_root, output_root=str(tmp_path_factory.mktemp("sets-out")), synth=None,
                experiment_id="sets")
    data["stage3"]["selection_sets"] = "seed"                     # top-K by each of the 4 ranking modes
    data["stage3"]["selection_set_variants"] = VARIANTS
    data["stage4a"].update(selection_sets="all", null_fraction=0.0)
    return config_from_dict(data)


def test_every_manifest_row_carries_its_selection_set(spark, set_config):
    from dhs.stages import stage3, stage4a

    r3 = stage3.run(spark, set_config)
    ids = r3.extra["counts"]["selection_set_ids"]
    assert len(ids) == 12
    parent = pq.read_table(r3.output_path).to_pandas()
    set_variant = r3.extra["counts"]["selection_set_variant"]
    # host_selection_sets = the region's sets whose variant the galaxy passes
    for sets, hosts, *flags in zip(parent["selection_sets"], parent["host_selection_sets"],
                                   *[parent[f"is_lrg_{v}"] for v in VARIANTS]):
        ok = dict(zip(VARIANTS, flags))
        assert list(hosts) == [s for s in sets if ok[set_variant[s]]]

    r4 = stage4a.run(spark, set_config)
    man = pq.read_table(r4.output_path).to_pandas()
    assert man["selection_set_id"].notna().all()
    made = set(man["selection_set_id"])
    assert made <= set(ids) and len(made) >= 6
    # each row's host is a host of its set: in a region of the set and passing the set's LRG variant
    hosts = {(g, s) for g, hs in zip(parent["galaxy_id"], parent["host_selection_sets"]) for s in hs}
    assert all((g, s) in hosts for g, s in zip(man["galaxy_id"], man["selection_set_id"]))
    # a galaxy in two sets gets rows in both, told apart by the task id
    assert man["task_id"].is_unique
    assert all(t.startswith(f"sets/{s}/") for t, s, c in zip(man["task_id"], man["selection_set_id"],
                                                            man["is_control"]) if c == 0)
    # controls stay inside their set
    pos_set = dict(zip(man["task_id"], man["selection_set_id"]))
    ctl = man[man["is_control"] == 1]
    assert all(pos_set[p] == s for p, s in zip(ctl["control_of"], ctl["selection_set_id"]))
    from dhs.io.stage_meta import read_stage_config

    counts = read_stage_config(r4.output_path)["counts"]
    assert sorted(counts["selection_sets"]) == sorted(made)
    assert sum(v["rows_positive"] for v in counts["per_selection_set"].values()) == int((man["is_control"] == 0).sum())
