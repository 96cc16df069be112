"""Paths that may be local directories or ``s3://bucket/prefix`` URLs.

Spark reads and writes S3 through the ``s3a://`` connector; boto3 uses ``s3://``. Configuration always
holds ``s3://``; :func:`to_spark_path` converts at the Spark boundary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class S3Options:
    """Connection settings for an S3-protocol endpoint (None means the boto3 default chain)."""

    endpoint_url: str | None = None
    region: str | None = None


def is_s3(path: str) -> bool:
    """True for ``s3://`` / ``s3a://`` / ``s3n://`` URLs."""
    return str(path).startswith(("s3://", "s3a://", "s3n://"))


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/key/part`` → ``("bucket", "key/part")``."""
    if not is_s3(url):
        raise ValueError(f"not an S3 URL: {url!r} (expected s3://bucket/key)")
    p = urlparse(url)
    return p.netloc, p.path.lstrip("/")


def join(root: str, *parts: str) -> str:
    """Join path parts onto a local directory or an S3 URL."""
    root = str(root)
    if is_s3(root):
        base = root.rstrip("/")
        tail = "/".join(str(p).strip("/") for p in parts if str(p))
        return f"{base}/{tail}" if tail else base
    return os.path.join(root, *[str(p) for p in parts])


def to_spark_path(path: str) -> str:
    """Path as Spark's Hadoop filesystem wants it: ``s3://`` becomes ``s3a://``; local paths absolute."""
    path = str(path)
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://"):]
    if is_s3(path) or "://" in path:
        return path
    return os.path.abspath(path)


def s3_client(options: S3Options | None = None) -> Any:
    """A boto3 S3 client using the standard credential chain and the optional endpoint."""
    import boto3

    options = options or S3Options()
    kwargs: dict[str, Any] = {}
    if options.endpoint_url:
        kwargs["endpoint_url"] = options.endpoint_url
    if options.region:
        kwargs["region_name"] = options.region
    return boto3.client("s3", **kwargs)


def exists(path: str, options: S3Options | None = None) -> bool:
    """True if a local file/folder or an S3 object/prefix exists."""
    if not is_s3(path):
        return os.path.exists(path)
    bucket, key = split_s3(path)
    resp = s3_client(options).list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/"), MaxKeys=1)
    return resp.get("KeyCount", 0) > 0


def read_bytes(path: str, options: S3Options | None = None) -> bytes:
    """Whole content of a local file or S3 object."""
    if not is_s3(path):
        with open(path, "rb") as fh:
            return fh.read()
    bucket, key = split_s3(path)
    return s3_client(options).get_object(Bucket=bucket, Key=key)["Body"].read()


def write_bytes(path: str, data: bytes, options: S3Options | None = None) -> None:
    """Write a whole local file (creating folders) or S3 object."""
    if not is_s3(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return
    bucket, key = split_s3(path)
    s3_client(options).put_object(Bucket=bucket, Key=key, Body=data)
