"""Shared fixtures: one Spark session, the real test data, one synthetic sky, and the debug pipeline run once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
S3_SKY_BUCKET = "dhs-synth"

# Tests talk only to S3 protocol servers they start on 127.0.0.1: give boto3 dummy credentials before any
# Spark Python worker is forked, so executors see them too. Never real credentials, never the network.
for _k, _v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(_k, _v)
os.environ.pop("AWS_PROFILE", None)


def _shared_data_candidates() -> list[Path]:
    """Where the real test data may be: $DHS_TEST_DATA, else ``../shared/data`` beside this checkout or,
    for a clone made elsewhere (e.g. in a temporary directory), beside the local repository it was cloned
    from."""
    if os.environ.get("DHS_TEST_DATA"):
        return [Path(os.environ["DHS_TEST_DATA"])]
    candidates = [REPO.parent / "shared" / "data"]
    try:
        origin = subprocess.run(
            ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and "://" not in origin and ":" not in origin.split("/")[0]:
        candidates.append(Path(origin).expanduser().resolve().parent / "shared" / "data")
    return candidates


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real external test data (see _shared_data_candidates)."""
    candidates = _shared_data_candidates()
    for path in candidates:
        if path.is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise RuntimeError(
        f"real test data not found (tried {tried}); set DHS_TEST_DATA to the folder holding "
        "legacysurvey/, cosmos/, lenses/"
    )


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (local[2], 4 shuffle partitions, no UI)."""
    from dhs.config import SparkSettings
    from dhs.spark import get_spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = get_spark(
        SparkSettings(
            master="local[2]",
            app_name="dhs-tests",
            shuffle_partitions=4,
            show_progress=False,
            conf={"spark.ui.enabled": "false", "spark.driver.memory": "2g"},
        )
    )
    yield session
    session.stop()


ARROW_BATCH_KEY = "spark.sql.execution.arrow.maxRecordsPerBatch"


@pytest.fixture(autouse=True)
def _arrow_batch_size_restored(request):
    """Stage 4c sets the session's Arrow batch size from ``stage4c.arrow_batch_rows`` (tests use 3–7 rows):
    every later test of the shared session gets the size it had before, not a few rows per batch."""
    if "spark" not in request.fixturenames:
        yield
        return
    spark = request.getfixturevalue("spark")
    before = spark.conf.get(ARROW_BATCH_KEY)
    yield
    spark.conf.set(ARROW_BATCH_KEY, before)


@pytest.fixture(scope="session")
def synth_sky(tmp_path_factory):
    """The default synthetic DR10 sky, built once per test session."""
    from dhs.synth import build_sky

    return build_sky(str(tmp_path_factory.mktemp("synth") / "sky"))


@pytest.fixture(scope="session")
def debug_config(synth_sky, tmp_path_factory):
    """configs/debug.yaml pointed at the session's synthetic sky, output in a temporary folder."""
    from dhs.config import load_config

    out = tmp_path_factory.mktemp("debug-output")
    return load_config(
        REPO / "configs" / "debug.yaml",
        [f"survey_root={synth_sky.survey_root}", f"output_root={out}", "synth=null"],
    )


@pytest.fixture(scope="session")
def stage3_result(spark, debug_config):
    from dhs.stages import stage3

    return stage3.run(spark, debug_config)


@pytest.fixture(scope="session")
def stage4a_result(spark, debug_config, stage3_result):
    from dhs.stages import stage4a

    return stage4a.run(spark, debug_config)


@pytest.fixture(scope="session")
def stage4c_result(spark, debug_config, stage4a_result):
    from dhs.stages import stage4c

    return stage4c.run(spark, debug_config)


@pytest.fixture(scope="session")
def stage4d_result(spark, debug_config, stage4c_result):
    from dhs.stages import stage4d

    return stage4d.run(spark, debug_config)


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 protocol server (moto) on 127.0.0.1 for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_synth_sky(s3_endpoint, synth_sky) -> str:
    """The session's synthetic DR10 sky uploaded once to bucket ``dhs-synth`` of the session's S3 server;
    returns its ``s3://`` root (the same layout as ``synth_sky.survey_root``)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=S3_SKY_BUCKET)
    root = Path(synth_sky.survey_root)
    n = 0
    for f in sorted(root.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), S3_SKY_BUCKET, f"dr10/{f.relative_to(root).as_posix()}")
            n += 1
    assert n > 50, f"only {n} files in the synthetic sky"
    return f"s3://{S3_SKY_BUCKET}/dr10"
