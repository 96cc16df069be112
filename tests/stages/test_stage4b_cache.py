"""Stage 4b coadd cache against loopback HTTP servers: full mirror, resume, retries, truncation, 404."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from dhs.stages.stage4b import brick_relpaths, fetch_file, mirror_bricks, write_assets

BRICKS = ["0001p000", "0003p000"]


def _tiny_tree(root: Path, bricks=BRICKS) -> None:
    """A minimal DR10-layout tree: every coadd file is a small valid FITS file."""
    for i, b in enumerate(bricks):
        for rel in brick_relpaths(b):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            data = np.full((8, 8), i + len(rel), dtype=np.float32)
            fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data)]).writeto(p)


class _Handler(http.server.SimpleHTTPRequestHandler):
    fail_first = 0             # answer the first N requests with 503
    truncate_suffix = None     # for paths ending with this, send half the body with the full Content-Length
    lie_suffix = None          # for paths ending with this, serve a truncated file with a matching length
    counter = None

    def log_message(self, *a):  # keep test output quiet
        pass

    def do_GET(self):
        cls = type(self)
        with cls.counter["lock"]:
            cls.counter["n"] += 1
            n = cls.counter["n"]
        if n <= cls.fail_first:
            self.send_error(503, "try again")
            return
        path = self.translate_path(self.path)
        if cls.truncate_suffix and self.path.endswith(cls.truncate_suffix) and os.path.isfile(path):
            body = Path(path).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if cls.lie_suffix and self.path.endswith(cls.lie_suffix) and os.path.isfile(path):
            body = Path(path).read_bytes()[:1000]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@contextmanager
def _serve(root: Path, **behaviour):
    handler = type("H", (_Handler,), dict(behaviour, counter={"n": 0, "lock": threading.Lock()}))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", handler.counter
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "remote"
    _tiny_tree(root)
    return root


def _same_tree(a: Path, b: Path, bricks=BRICKS) -> bool:
    return all((a / r).read_bytes() == (b / r).read_bytes() for br in bricks for r in brick_relpaths(br))


def test_mirror_synthetic_sky_and_resume(synth_sky, tmp_path):
    root = Path(synth_sky.survey_root)
    bricks = list(synth_sky.bricknames)[:3]
    dest = tmp_path / "cache"
    with _serve(root) as (url, counter):
        t = mirror_bricks(bricks, url, str(dest), workers=4, retries=1, backoff_s=0.01)
        assert t.column("ok").to_pylist() == [True] * len(bricks)
        assert t.column("n_fetched").to_pylist() == [10] * len(bricks)
        assert _same_tree(root, dest, bricks)
        n1 = counter["n"]
        t2 = mirror_bricks(bricks, url, str(dest), workers=4)          # resume: nothing to fetch
        assert counter["n"] == n1
        assert t2.column("n_cached").to_pylist() == [10] * len(bricks)


def test_retries_after_failures(tree, tmp_path):
    with _serve(tree, fail_first=3) as (url, counter):
        t = mirror_bricks(BRICKS, url, str(tmp_path / "c"), workers=1, retries=3, backoff_s=0.001)
    assert all(t.column("ok").to_pylist())
    assert counter["n"] == 20 + 3
    assert _same_tree(tree, tmp_path / "c")


def test_retries_exhausted_reported(tree, tmp_path):
    with _serve(tree, fail_first=10**6) as (url, _):
        t = mirror_bricks(BRICKS[:1], url, str(tmp_path / "c"), workers=2, retries=2, backoff_s=0.0)
    row = t.to_pylist()[0]
    assert row["ok"] is False and "503" in row["error"] and "3 attempts" in row["error"]
    assert not any((tmp_path / "c").rglob("*.fits.fz"))


def test_backoff_doubles():
    delays = []
    r = fetch_file("http://127.0.0.1:9", "/nonexistent", "coadd/000/0001p000/x.fits.fz", retries=3,
                   backoff_s=0.5, timeout_s=0.5, sleep=delays.append)
    assert r.status == "failed" and r.attempts == 4
    assert delays == [0.5, 1.0, 2.0]


def test_truncated_body_refused(tree, tmp_path):
    with _serve(tree, truncate_suffix="invvar-r.fits.fz") as (url, _):
        t = mirror_bricks(BRICKS, url, str(tmp_path / "c"), workers=2, retries=1, backoff_s=0.0)
    rows = {r["brick"]: r for r in t.to_pylist()}
    for b in BRICKS:
        assert rows[b]["ok"] is False
        assert "invvar-r" in rows[b]["error"] and "truncated" in rows[b]["error"]
        assert rows[b]["n_fetched"] == 9
        assert not (tmp_path / "c" / f"coadd/000/{b}/legacysurvey-{b}-invvar-r.fits.fz").exists()
    assert not list((tmp_path / "c").rglob("*.part-*"))


def test_truncated_file_with_matching_length_refused(tree, tmp_path):
    with _serve(tree, lie_suffix="maskbits.fits.fz") as (url, _):
        t = mirror_bricks(BRICKS[:1], url, str(tmp_path / "c"), retries=0)
    row = t.to_pylist()[0]
    assert row["ok"] is False and "2880" in row["error"]


def test_missing_file_404_not_retried_and_empty_refused(tree, tmp_path):
    (tree / brick_relpaths(BRICKS[0])[0]).unlink()
    (tree / brick_relpaths(BRICKS[1])[0]).write_bytes(b"")
    with _serve(tree) as (url, counter):
        t = mirror_bricks(BRICKS, url, str(tmp_path / "c"), retries=3, backoff_s=0.0)
        rows = {r["brick"]: r for r in t.to_pylist()}
        assert "http_404" in rows[BRICKS[0]]["error"] and not rows[BRICKS[0]]["ok"]
        assert "empty" in rows[BRICKS[1]]["error"] and not rows[BRICKS[1]]["ok"]
        assert counter["n"] == 18 + 1 + 4          # 404 once, the empty file 1 + 3 retries


def test_assets_table_written(tree, tmp_path):
    with _serve(tree) as (url, _):
        t = mirror_bricks(BRICKS, url, str(tmp_path / "c"))
    p = write_assets(t, str(tmp_path / "assets" / "assets.parquet"))
    back = pq.read_table(p)
    assert back.column_names[:3] == ["brick", "ok", "error"]
    assert back.equals(t)
    assert back.schema.field("ok").type == pa.bool_()


def test_bad_base_url():
    with pytest.raises(ValueError, match="http"):
        mirror_bricks(BRICKS, "ftp://x", "/tmp/none")


def test_run_from_config_writes_assets_and_stage_config(tree, tmp_path):
    import json

    import pyarrow.dataset as pads

    from dhs.config import config_from_dict
    from dhs.stages import stage4b

    mdir = tmp_path / "manifest"
    t = pa.table({"task_id": ["a", "b", "c"], "brickname": [BRICKS[0], BRICKS[1], BRICKS[0]],
                  "region_split": ["train", "val", "train"]})
    pads.write_dataset(t, mdir, format="parquet", partitioning=["region_split"], partitioning_flavor="hive")
    with _serve(tree) as (url, _):
        cfg = config_from_dict({"survey_root": str(tmp_path / "cache"), "output_root": str(tmp_path / "out"),
                                "synth": {}, "stage4c": {"manifest_path": str(mdir),
                                                         "cache": {"base_url": url, "workers": 3}}})
        res = stage4b.run(None, cfg)
    assert res.rows_in == 2 and res.failures == {}
    assets = pq.read_table(Path(res.output_path) / "assets.parquet")
    assert assets.column("brick").to_pylist() == BRICKS and all(assets.column("ok").to_pylist())
    doc = json.loads((Path(res.output_path) / "_stage_config.json").read_text())
    assert doc["counts"]["files_fetched"] == 20
    assert _same_tree(tree, tmp_path / "cache")


@pytest.mark.s3
def test_mirror_into_s3_and_resume(tree, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    from dhs.io.paths import S3Options

    for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                 ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        opts = S3Options(endpoint_url=f"http://{host}:{port}", region="us-east-1")
        client = boto3.client("s3", endpoint_url=opts.endpoint_url, region_name="us-east-1")
        client.create_bucket(Bucket="cache")
        with _serve(tree) as (url, counter):
            t = mirror_bricks(BRICKS, url, "s3://cache/dr10", workers=4, s3=opts)
            assert all(t.column("ok").to_pylist()) and sum(t.column("n_fetched").to_pylist()) == 20
            n = counter["n"]
            t2 = mirror_bricks(BRICKS, url, "s3://cache/dr10", workers=4, s3=opts)
            assert counter["n"] == n and sum(t2.column("n_cached").to_pylist()) == 20
        rel = brick_relpaths(BRICKS[1])[4]
        body = client.get_object(Bucket="cache", Key=f"dr10/{rel}")["Body"].read()
        assert body == (tree / rel).read_bytes()
    finally:
        server.stop()
