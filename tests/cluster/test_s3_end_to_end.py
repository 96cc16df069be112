"""Stage 4c reading the coadds and the COSMOS bank from an S3 server on 127.0.0.1, submitted to the standalone
cluster like an EMR step, gives the same stamps as reading them from local disk (Sersic and COSMOS sources)."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dhs.io.outputs import stage_output_dir

from .compare import assert_same_output
from .conftest import write_run_config
from .standalone import REPO, client_mode_args, fresh_workdir, spark_submit

pytestmark = [pytest.mark.s3, pytest.mark.cluster, pytest.mark.slow]

#: manifest rows the test injects: two bricks' worth (each brick's coadds are fetched from S3 by each partition
#: that holds it), enough for more than 10 successful COSMOS and 10 Sersic injections
N_ROWS = 128


@pytest.fixture(scope="module")
def s3_sky(s3_endpoint, s3_synth_sky, tmp_path_factory):
    """The synthetic sky (uploaded once per session, tests/conftest.py) and a synthetic COSMOS bank uploaded
    next to it; returns (survey URL, bank path, bank URL)."""
    from dhs.cosmos.synthetic import write_synthetic_bank

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = s3_synth_sky[len("s3://"):].split("/")[0]
    bank = Path(write_synthetic_bank(tmp_path_factory.mktemp("bank") / "bank.h5", n=12, seed=3))
    client.upload_file(str(bank), bucket, "banks/bank.h5")
    return s3_synth_sky, str(bank), f"s3://{bucket}/banks/bank.h5"


@pytest.fixture(scope="module")
def mixed_manifest(debug_config, stage4a_result, tmp_path_factory) -> str:
    """The debug manifest's rows on its two most populated bricks (about N_ROWS of them, spread evenly over
    task_id), every other injection switched to COSMOS sources (controls unchanged)."""
    src = stage_output_dir(debug_config, "4a", "manifests")
    table = ds.dataset(src, format="parquet", partitioning="hive").to_table().sort_by("task_id")
    counts = Counter(table.column("brickname").to_pylist())
    bricks = sorted(counts, key=lambda b: (-counts[b], b))[:2]
    table = table.filter(pc.is_in(table.column("brickname"), pa.array(bricks)))
    table = table.take(list(range(0, table.num_rows, max(1, table.num_rows // N_ROWS))))
    modes = [m if lm == "CONTROL" or i % 2 else "cosmos" for i, (m, lm) in
             enumerate(zip(table.column("source_mode").to_pylist(), table.column("lens_model").to_pylist()))]
    table = table.set_column(table.column_names.index("source_mode"), "source_mode", pa.array(modes, pa.string()))
    out = tmp_path_factory.mktemp("mixed-manifest") / "manifest"
    pq.write_to_dataset(table, str(out), partition_cols=["region_split"])
    return str(out)


def test_stage4c_from_s3_on_the_cluster_equals_local(spark, cluster, dist, debug_config, s3_endpoint, s3_sky,
                                                     mixed_manifest, tmp_path):
    """Stage 4c submitted like an EMR step (fresh working directory, packed environment) reading coadds and
    the COSMOS bank from S3 gives the rows of an in-process run reading them from local disk."""
    from dhs.config import config_from_dict
    from dhs.stages import stage4c

    survey_url, bank_path, bank_url = s3_sky
    data = debug_config.resolved_dict()
    data.update(output_root=str(tmp_path / "local"), force=True)
    data["stage4c"].update(manifest_path=mixed_manifest, cosmos_bank=bank_path)
    local = config_from_dict(data)
    result = stage4c.run(spark, local)
    assert result.rows_out == result.rows_in >= N_ROWS // 2

    remote = local.model_copy(update={"output_root": str(tmp_path / "s3")})
    cfg_path = write_run_config(debug_config, tmp_path / "run.yaml", output_root=str(tmp_path / "s3"),
                                survey_root=survey_url, **{"s3.endpoint_url": s3_endpoint,
                                                           "stage4c.manifest_path": mixed_manifest,
                                                           "stage4c.cosmos_bank": bank_url})
    job = Path(shutil.copy2(REPO / "jobs" / "stage4c_inject.py", tmp_path / "stage4c_inject.py"))
    log = tmp_path / "submit.log"
    spark_submit(cluster, client_mode_args(cluster, dist.archive, job, ["--config", str(cfg_path)]),
                 fresh_workdir(tmp_path / "container", dist.env_dir), log)
    assert str(REPO) not in log.read_text()
    for kind in ("stamps", "metrics"):
        n = assert_same_output(Path(stage_output_dir(local, "4c", kind)), Path(stage_output_dir(remote, "4c", kind)),
                               kind)
        assert n > 0
    metrics = ds.dataset(stage_output_dir(remote, "4c", "metrics"), format="parquet", partitioning="hive").to_table()
    ok = pc.sum(metrics.column("cutout_ok")).as_py()
    assert ok >= 0.8 * metrics.num_rows, "most synthetic-sky tasks should succeed when read from S3"
    inj = metrics.filter(pc.and_(pc.equal(metrics.column("lens_model"), "SIE"),
                                 pc.equal(metrics.column("cutout_ok"), 1))).to_pandas()
    cosmos = inj[inj["source_mode"] == "cosmos"]
    assert len(cosmos) > 10 and cosmos["cosmos_index"].min() >= 0
    assert (inj["source_mode"] == "sersic").sum() > 10
    # issue 7: injected flux per band = requested (unlensed) flux x magnification within 1 %, and the
    # band ratios follow the colours used (arcs lie well inside the 16.8" stamp; Moffat wings beyond
    # the edge hold < 1e-4 of the flux)
    for b in "grz":
        expected = cosmos[f"src_flux_{b}"] * cosmos["magnification"]
        rel = (cosmos[f"total_injected_flux_{b}"] - expected).abs() / expected
        assert rel.max() < 0.01, (b, rel.max())
    gr = -2.5 * (cosmos["total_injected_flux_g"] / cosmos["total_injected_flux_r"]).map(math.log10)
    rz = -2.5 * (cosmos["total_injected_flux_r"] / cosmos["total_injected_flux_z"]).map(math.log10)
    assert (gr - cosmos["src_gr_used"]).abs().max() < 0.011
    assert (rz - cosmos["src_rz_used"]).abs().max() < 0.011
