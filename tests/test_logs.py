"""The dhs logger: step lines with counts and seconds, progress lines while Spark runs, the logging config."""

from __future__ import annotations

import re
import time

import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.logs import ProgressMonitor, StageSteps, configure_logging

LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO dhs: (.*)$")


def _messages(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        assert m, f"not a dhs log line: {line!r}"
        out.append(m.group(1))
    return out


def test_step_lines_carry_counts_and_seconds(capsys):
    configure_logging("INFO")
    steps = StageSteps("4x")
    time.sleep(0.2)
    assert steps.done("read manifest", rows=5000, partitions=16) >= 0.2
    steps.done("write")
    msgs = _messages(capsys.readouterr().out)
    assert re.fullmatch(r"stage 4x: read manifest: rows=5000, partitions=16 \(0\.[2-9] s\)", msgs[0]), msgs
    assert re.fullmatch(r"stage 4x: write \(0\.0 s\)", msgs[1]), msgs


def test_level_from_config_silences_info(capsys):
    configure_logging("WARNING")
    try:
        StageSteps("4x").done("quiet", rows=1)
        assert capsys.readouterr().out == ""
    finally:
        configure_logging("INFO")


@pytest.mark.spark
def test_progress_lines_count_rows_while_tasks_run(spark, capsys):
    """A 16-task job that takes ~2 s on 2 cores (each task waits 0.25 s, however many Arrow batches the
    session's maxRecordsPerBatch cuts its rows into), polled every 0.2 s: rows done rise to the total."""
    configure_logging("INFO")
    steps = StageSteps("4x", spark)
    rows_done = steps.count_rows(1600)

    def slow(batches):
        time.sleep(0.25)
        for b in batches:
            rows_done.add(b.num_rows)
            yield b

    df = spark.range(1600).repartition(16)
    with ProgressMonitor(spark, interval=0.2):
        assert df.mapInArrow(slow, df.schema).count() == 1600
    steps.done("slow job", rows=int(rows_done.value))
    msgs = _messages(capsys.readouterr().out)
    progress = [m for m in msgs if "in progress" in m]
    assert len(progress) >= 3, msgs
    done = []
    for m in progress:
        r = re.fullmatch(r"stage 4x: in progress: rows (\d+)/1600 \(\d+ %\), tasks (\d+)/(\d+), \d+ s", m)
        assert r, m
        done.append(int(r.group(1)))
    assert done == sorted(done) and done[-1] > done[0]
    assert msgs[-1].startswith("stage 4x: slow job: rows=1600 (")


def test_logging_section_is_validated(tmp_path):
    base = {"survey_root": str(tmp_path), "output_root": str(tmp_path / "o")}
    cfg = config_from_dict(base, ["logging.spark_level=info", "logging.progress_seconds=10"])
    assert cfg.logging.spark_level == "INFO" and cfg.logging.level == "INFO"
    assert cfg.logging.progress_seconds == 10
    with pytest.raises(ConfigError, match=r"logging.spark_level: .*expected one of Spark's log levels"):
        config_from_dict(base, ["logging.spark_level=LOUD"])
    with pytest.raises(ConfigError, match=r"logging.progress_seconds: "):
        config_from_dict(base, ["logging.progress_seconds=0"])
