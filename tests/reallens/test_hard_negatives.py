"""Hard negatives on the core level: score-table schema checks, quotas, the ranking and its tie-breaks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.config.stage6 import HardNegativeSettings
from dhs.reallens.hard_negatives import (
    ScoreTableError,
    best_scores,
    check_score_schema,
    hard_negative_quotas,
    read_score_schemas,
    select_hard_negatives,
)
from dhs.reallens.sampling import sample_hash


def _write(path, **cols):
    pq.write_table(pa.table(cols), path)
    return str(path)


def test_schema_ok_for_float_int_and_large_string(tmp_path):
    for t in (pa.float32(), pa.float64(), pa.int64()):
        check_score_schema(pa.schema([("galaxy_id", pa.large_string()), ("score", t)]), "s.parquet",
                           "galaxy_id", "score")


@pytest.mark.parametrize("schema,match", [
    (pa.schema([("galaxy_id", pa.string()), ("prob", pa.float64())]),
     r"s\.parquet: column 'score' not found \(columns: \['galaxy_id', 'prob'\]\)"),
    (pa.schema([("id", pa.string()), ("score", pa.float64())]), r"s\.parquet: column 'galaxy_id' not found"),
    (pa.schema([("galaxy_id", pa.int64()), ("score", pa.float64())]),
     r"s\.parquet: column 'galaxy_id' has type int64; expected a string"),
    (pa.schema([("galaxy_id", pa.string()), ("score", pa.string())]),
     r"s\.parquet: column 'score' has type string; expected an integer or floating-point score"),
])
def test_schema_errors_name_file_and_column(schema, match):
    with pytest.raises(ScoreTableError, match=match):
        check_score_schema(schema, "s.parquet", "galaxy_id", "score")


def test_folder_is_checked_file_by_file(tmp_path):
    d = tmp_path / "scores"
    (d / "part=1").mkdir(parents=True)
    _write(d / "a.parquet", galaxy_id=["x"], score=[0.1])
    _write(d / "part=1" / "b.parquet", galaxy_id=["y"], p=[0.2])
    (d / "_SUCCESS").write_text("")
    with pytest.raises(ScoreTableError, match=r"b\.parquet: column 'score' not found"):
        read_score_schemas(str(d), HardNegativeSettings())
    (d / "part=1" / "b.parquet").unlink()
    assert read_score_schemas(str(d), HardNegativeSettings()) == [str(d / "a.parquet")]
    (d / "c.parquet").write_text("not parquet")
    with pytest.raises(ScoreTableError, match=r"c\.parquet: not a readable Parquet file"):
        read_score_schemas(str(d), HardNegativeSettings())
    with pytest.raises(ScoreTableError, match="no such file or folder"):
        read_score_schemas(str(tmp_path / "nope"), HardNegativeSettings())


def test_missing_score_table_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"stage6\.hard_negatives\.score_table: input path does not exist"):
        config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"),
                          "stage6": {"hard_negatives": {"score_table": str(tmp_path / "s.parquet")}}})


def test_quotas_per_positive_and_per_stratum():
    s = HardNegativeSettings(per_positive=2.5)
    q = hard_negative_quotas({"a": 2, "b": 1, "c": 0}, {"a": 100, "b": 1, "d": 50}, s)
    assert q == {"a": {"target": 5, "eligible": 100, "take": 5}, "b": {"target": 2, "eligible": 1, "take": 1}}
    q = hard_negative_quotas({"a": 2}, {"a": 100, "b": 1, "d": 0}, HardNegativeSettings(count="per_stratum",
                                                                                         per_stratum=3))
    assert q == {"a": {"target": 3, "eligible": 100, "take": 3}, "b": {"target": 3, "eligible": 1, "take": 1}}


def test_best_scores_keep_the_highest_and_drop_nan():
    ids, sc, c = best_scores(["a", "b", "a", "c", None, "d"], [0.1, np.nan, 0.7, None, 0.9, 0.2])
    assert ids.tolist() == ["a", "d"] and sc.tolist() == [0.7, 0.2]
    assert c == {"rows": 6, "null_or_nan": 3, "duplicate_rows": 1, "ids": 2}


def test_selection_takes_the_highest_scores_per_stratum():
    rng = np.random.default_rng(1)
    n = 4000
    ids = np.array([f"b_{i}" for i in range(n)])
    st = rng.choice(["3-5|SER", "6-10|DEV", "11+|REX"], n)
    score = np.round(rng.uniform(0, 1, n), 2)          # 101 levels: many ties
    h = sample_hash(ids.tolist(), 5)
    q = hard_negative_quotas({"3-5|SER": 3, "6-10|DEV": 1}, {s: int((st == s).sum()) for s in set(st)},
                             HardNegativeSettings(per_positive=10))
    take, rank = select_hard_negatives(st, score, h, ids, q)
    assert take.sum() == 40 and not take[st == "11+|REX"].any()
    for s, qq in q.items():
        sel, rest = take & (st == s), ~take & (st == s)
        assert sel.sum() == qq["take"]
        assert score[sel].min() >= score[rest].max()                 # exactly the highest scores
        edge = score[sel].min()
        if (rest & (score == edge)).any():                           # a tie at the edge: smaller hash wins
            assert h[sel & (score == edge)].max() < h[rest & (score == edge)].min()
        assert sorted(rank[st == s].tolist()) == list(range(1, int((st == s).sum()) + 1))
    perm = rng.permutation(n)
    take2, rank2 = select_hard_negatives(st[perm], score[perm], h[perm], ids[perm], q)
    np.testing.assert_array_equal(take2, take[perm])
    np.testing.assert_array_equal(rank2, rank[perm])


def test_equal_hashes_fall_back_to_the_id():
    take, rank = select_hard_negatives(["s"] * 3, [1.0, 1.0, 1.0], [7, 7, 7], ["c", "a", "b"],
                                       {"s": {"take": 2}})
    assert take.tolist() == [False, True, True] and rank.tolist() == [3, 1, 2]


def test_hard_negatives_are_remade_when_settings_or_pool_change(tmp_path):
    """Without Spark: the record in _stage_config.json decides whether only the hard negatives run again."""
    from dhs.io.stage_meta import write_stage_config_file
    from dhs.stages.stage6_hard_negatives import _settings_doc, hard_negatives_current

    scores = _write(tmp_path / "s.parquet", galaxy_id=["a"], score=[1.0])
    base = {"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"),
            "stage6": {"hard_negatives": {"score_table": scores}}}
    cfg = config_from_dict(base)
    neg, hn = str(tmp_path / "neg"), str(tmp_path / "hn")
    assert not hard_negatives_current(cfg, hn, neg)                    # nothing there yet
    write_stage_config_file(neg, {"ended_utc": "2026-01-01T00:00:00"})
    write_stage_config_file(hn, {"hard_negative_settings": _settings_doc(cfg, neg)})
    assert hard_negatives_current(cfg, hn, neg)
    other = config_from_dict({**base, "stage6": {"hard_negatives": {"score_table": scores, "per_positive": 5}}})
    assert not hard_negatives_current(other, hn, neg)                  # a setting changed
    assert not hard_negatives_current(config_from_dict({**base, "force": True}), hn, neg)
    write_stage_config_file(neg, {"ended_utc": "2026-01-02T00:00:00"})
    assert not hard_negatives_current(cfg, hn, neg)                    # the pool was made again
