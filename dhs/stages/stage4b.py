"""Stage 4b — the coadd cache: mirror the coadd files of a manifest's bricks from an HTTP(S) base URL.

For every brick in the manifest, the files of the DR10 layout (``coadd/<AAA>/<brick>/legacysurvey-<brick>-
{image,invvar,psfsize}-{g,r,z}.fits.fz`` and ``-maskbits.fits.fz``) are fetched from ``base_url`` into a
local directory or an ``s3://`` prefix (the survey root stage 4c then reads), in parallel threads.

* Resumable: a file already in the cache is not fetched again.  Files reach their final name only after
  they have been verified, so a present file is a complete file.
* Retries: connection errors, timeouts, HTTP 5xx/429 and short reads are retried with exponential backoff
  (``backoff_s · 2^k``); HTTP 4xx other than 429 (e.g. 404) is final.
* Refused: an empty body, a body shorter or longer than its ``Content-Length``, a body that does not start
  with a FITS primary header or whose size is not a whole number of 2880-byte FITS blocks.
* Output: an assets table (``brick, ok, error, n_files, n_fetched, n_cached, bytes``) as Parquet under
  ``phase4b/<variant>/assets/<experiment_id>/`` with its ``_stage_config.json``.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dhs.io.http import get_with_retries
from dhs.io.paths import S3Options, exists, is_s3, join, s3_client, split_s3, to_spark_path, write_bytes
from dhs.survey.bricks import validate_brickname
from dhs.survey.layout import BANDS, coadd_filename

STAGE = "4b"
FITS_BLOCK = 2880
_CHUNK = 1 << 20


class FetchRefused(Exception):
    """A response that must not be cached (empty, truncated, not FITS)."""


@dataclass
class FileResult:
    """Outcome for one file: ``status`` is "fetched", "cached" or "failed"."""

    relpath: str
    status: str
    error: str | None = None
    nbytes: int = 0
    attempts: int = 0


def brick_relpaths(brickname: str, products: Sequence[str] = ("image", "invvar", "maskbits", "psfsize"),
                   bands: Sequence[str] = BANDS) -> list[str]:
    """Paths (relative to the survey root, '/'-separated) of one brick's coadd files."""
    validate_brickname(brickname)
    out = []
    for product in products:
        if product == "maskbits":
            out.append(f"coadd/{brickname[:3]}/{brickname}/{coadd_filename(brickname, 'maskbits')}")
        else:
            out += [f"coadd/{brickname[:3]}/{brickname}/{coadd_filename(brickname, product, b)}" for b in bands]
    return out


def _read_verified(resp: Any) -> bytes:
    """Read an open response and verify the body (raises FetchRefused for a body that must not be cached)."""
    length = resp.headers.get("Content-Length")
    buf = io.BytesIO()
    while True:
        try:
            chunk = resp.read(_CHUNK)
        except Exception as exc:  # noqa: BLE001 - http.client.IncompleteRead etc.: a short body
            raise FetchRefused(f"truncated: connection closed after {buf.tell()} bytes "
                               f"of {length or 'unknown'} ({type(exc).__name__})") from None
        if not chunk:
            break
        buf.write(chunk)
    data = buf.getvalue()
    if not data:
        raise FetchRefused("empty: 0 bytes")
    if length is not None and int(length) != len(data):
        raise FetchRefused(f"truncated: got {len(data)} bytes, Content-Length {int(length)}")
    if not data.startswith(b"SIMPLE  ="):
        raise FetchRefused("not_fits: body does not start with a FITS primary header")
    if len(data) % FITS_BLOCK:
        raise FetchRefused(f"truncated: {len(data)} bytes is not a whole number of {FITS_BLOCK}-byte FITS blocks")
    return data


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, FetchRefused) else f"{type(exc).__name__}: {exc}"


def _cached(dest_path: str, s3: S3Options | None) -> bool:
    if is_s3(dest_path):
        bucket, key = split_s3(dest_path)
        try:
            s3_client(s3).head_object(Bucket=bucket, Key=key)
            return True
        except Exception:  # noqa: BLE001 - absent (404) or unreadable → fetch again
            return False
    return os.path.isfile(dest_path) and os.path.getsize(dest_path) > 0


def _store(dest_path: str, data: bytes, s3: S3Options | None) -> None:
    if is_s3(dest_path):
        write_bytes(dest_path, data, s3)
        return
    os.makedirs(os.path.dirname(os.path.abspath(dest_path)), exist_ok=True)
    tmp = f"{dest_path}.part-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch_file(base_url: str, dest_root: str, relpath: str, *, retries: int = 4, backoff_s: float = 1.0,
               timeout_s: float = 60.0, s3: S3Options | None = None, sleep=time.sleep) -> FileResult:
    """Mirror one file ``<base_url>/<relpath>`` to ``<dest_root>/<relpath>`` (skipped if already cached)."""
    dest = join(dest_root, *relpath.split("/"))
    if _cached(dest, s3):
        return FileResult(relpath, "cached")
    url = base_url.rstrip("/") + "/" + relpath
    got = get_with_retries(url, _read_verified, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
                           describe=_describe, headers={"User-Agent": "dhs-stage4b"}, sleep=sleep)
    if got.final:
        return FileResult(relpath, "failed", f"{got.error}: {url}", attempts=got.attempts)
    if not got.ok:
        return FileResult(relpath, "failed", f"{got.error} ({got.attempts} attempts): {url}", attempts=got.attempts)
    _store(dest, got.value, s3)
    return FileResult(relpath, "fetched", nbytes=len(got.value), attempts=got.attempts)


ASSET_SCHEMA = pa.schema([
    pa.field("brick", pa.string()), pa.field("ok", pa.bool_()), pa.field("error", pa.string()),
    pa.field("n_files", pa.int32()), pa.field("n_fetched", pa.int32()), pa.field("n_cached", pa.int32()),
    pa.field("bytes", pa.int64()),
])


def mirror_bricks(bricknames: Iterable[str], base_url: str, dest_root: str, *,
                  products: Sequence[str] = ("image", "invvar", "maskbits", "psfsize"),
                  workers: int = 8, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0,
                  s3: S3Options | None = None) -> pa.Table:
    """Mirror every coadd file of ``bricknames``; returns the assets table (one row per brick, sorted).

    A brick is ``ok`` when all of its files are in the cache afterwards; ``error`` lists the failed files.
    """
    if not str(base_url).startswith(("http://", "https://")):
        raise ValueError(f"stage 4b: base_url must be http:// or https://, got {base_url!r}")
    bricks = sorted(set(bricknames))
    jobs = [(b, rel) for b in bricks for rel in brick_relpaths(b, products)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda j: fetch_file(base_url, dest_root, j[1], retries=retries,
                                                     backoff_s=backoff_s, timeout_s=timeout_s, s3=s3), jobs))
    rows = {b: {"brick": b, "ok": True, "error": None, "n_files": 0, "n_fetched": 0, "n_cached": 0, "bytes": 0}
            for b in bricks}
    for (b, _), r in zip(jobs, results):
        row = rows[b]
        row["n_files"] += 1
        row["bytes"] += r.nbytes
        if r.status == "fetched":
            row["n_fetched"] += 1
        elif r.status == "cached":
            row["n_cached"] += 1
        else:
            row["ok"] = False
            msg = f"{r.relpath.rsplit('/', 1)[-1]}: {r.error}"
            row["error"] = msg if row["error"] is None else f"{row['error']}; {msg}"
    return pa.Table.from_pylist([rows[b] for b in bricks], schema=ASSET_SCHEMA)


def manifest_bricks(spark: Any, path: str) -> list[str]:
    """Distinct brick names of a manifest (Spark when a session is given, else pyarrow)."""
    if spark is not None:
        return sorted(r["brickname"] for r in spark.read.parquet(to_spark_path(path))
                      .select("brickname").distinct().collect())
    import pyarrow.dataset as ds

    t = ds.dataset(path, format="parquet", partitioning="hive").to_table(columns=["brickname"])
    return sorted(set(t.column("brickname").to_pylist()))


def write_assets(table: pa.Table, path: str, s3: S3Options | None = None) -> str:
    """Write the assets table as one zstd Parquet file at ``path`` (local or s3://); returns the path."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    write_bytes(path, sink.getvalue(), s3)
    return path


def run(spark: Any, cfg: Any) -> Any:
    """Mirror the coadds of the stage 4a manifest's bricks (settings: ``stage4c.cache``)."""
    from dhs.stages.common import StageResult, finish_stage, should_skip, skipped_result, stage_output_dir
    from dhs.stages.stage4c import manifest_path

    c = cfg.stage4c.cache
    if not c.base_url:
        raise ValueError("stage 4b: stage4c.cache.base_url is not set (the HTTP(S) root of the DR10 files)")
    out_dir = stage_output_dir(cfg, STAGE, "assets")
    if should_skip(cfg, [out_dir]):
        return skipped_result(STAGE, out_dir)
    started = time.time()
    src = manifest_path(cfg)
    opts = cfg.s3.options()
    if not exists(src, opts):
        raise FileNotFoundError(f"stage 4b: manifest not found at {src}")
    dest = c.dest or cfg.survey_root
    bricks = manifest_bricks(spark, src)
    table = mirror_bricks(bricks, c.base_url, dest, products=c.products, workers=c.workers, retries=c.retries,
                          backoff_s=c.backoff_s, timeout_s=c.timeout_s, s3=opts)
    write_assets(table, join(out_dir, "assets.parquet"), opts)
    ok = table.column("ok").to_pylist()
    errors = [e for e in table.column("error").to_pylist() if e]
    failures = {"brick_incomplete": len(errors)} if errors else {}
    result = StageResult(stage=STAGE, output_path=out_dir, rows_in=len(bricks), rows_out=table.num_rows,
                         failures=failures, extra={"dest": dest})
    counts = {"bricks": len(bricks), "bricks_ok": int(sum(ok)),
              "files_fetched": int(sum(table.column("n_fetched").to_pylist())),
              "files_cached": int(sum(table.column("n_cached").to_pylist())),
              "bytes_fetched": int(sum(table.column("bytes").to_pylist()))}
    return finish_stage(cfg, result, [out_dir], inputs=[src, c.base_url], counts=counts, started=started,
                        extra={"dest": dest})
