"""The COSMOS source bank: an HDF5 file of unit-flux real-galaxy templates, its writer and its reader.

File layout (``format = "dhs-cosmos-bank"``, ``format_version = 1``)::

    /images                 (N, H, W) float32, each template sums to 1 (unit total flux), surface brightness
                            sampled on a square grid of ``pixscale_arcsec``; row index = +y, column = +x;
                            the light centroid sits at the array centre ((H-1)/2, (W-1)/2).
                            Chunked one template per chunk, gzip + shuffle.
    /meta/<column>          (N,) one dataset per per-galaxy column (see ``META_COLUMNS``), float64/int64.
    attrs                   format, format_version, n, pixscale_arcsec, stamp_size, created_utc,
                            dhs_version, source_catalog, colour_source, build_params (JSON string).

Reader: :meth:`CosmosBank.open` takes a local path or an ``s3://`` URL. An S3 bank is downloaded once per
process (per executor) into a temporary cache folder and reused by every later ``open`` of the same URL.
``lazy=True`` keeps the file open and reads one template per call; ``lazy=False`` loads every template.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

import h5py
import numpy as np
import pyarrow as pa

BANK_FORMAT = "dhs-cosmos-bank"
BANK_FORMAT_VERSION = 1

#: Per-galaxy metadata columns (name -> numpy dtype) written by the builder. ``write_bank`` requires these
#: for a full bank; extra columns are stored as well. Units: arcsec for ``*_arcsec``, AB mag for ``mag_*``.
META_COLUMNS: dict[str, str] = {
    "catalog_index": "int64",      # row of the galaxy in the source RealGalaxyCatalog
    "ident": "int64",              # the catalogue's IDENT
    "hlr_arcsec": "float64",       # half-light radius of the template (circular, about the centroid)
    "mag_f814w": "float64",        # catalogue F814W magnitude (MAG column)
    "photo_z": "float64",          # photometric redshift (NaN when the catalogue has none)
    "mag_g": "float64",            # g, r, z magnitudes used for the colours (NaN when absent)
    "mag_r": "float64",
    "mag_z": "float64",
    "color_gr": "float64",         # g - r (NaN when absent)
    "color_rz": "float64",         # r - z (NaN when absent)
    "clumpiness": "float64",       # fraction of the light in small-scale structure (see builder)
    "snr": "float64",              # template S/N in the HST image: footprint flux / noise over footprint
    "edge_flux_frac": "float64",   # fraction of the template flux in the outer border of the stamp
    "stamp_flux_frac": "float64",  # sky-subtracted flux of the whole HST stamp inside the bank stamp
    "footprint_npix": "int64",     # pixels kept by the footprint mask
    "sky_level": "float64",        # residual sky subtracted, HST counts per bank pixel
    "recentre_dx_arcsec": "float64",  # shift applied to the GalSim profile to centre its light (+x)
    "recentre_dy_arcsec": "float64",  # shift applied to the GalSim profile to centre its light (+y)
}


class CosmosBankError(ValueError):
    """A file that is not a readable COSMOS source bank (message names the file and what is wrong)."""


def _dhs_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("dhs")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0+unknown"


_BLOCK = 256


def _normalised_block(path: str, images: Any, start: int, stop: int) -> np.ndarray:
    """Templates ``start:stop`` checked (finite, positive sum) and renormalised to unit sum, as float32."""
    blk = np.asarray(images[start:stop], dtype=np.float64)
    finite = np.isfinite(blk).all(axis=(1, 2))
    if not finite.all():
        raise ValueError(f"write_bank({path}): template {start + int(np.flatnonzero(~finite)[0])} has "
                         "non-finite pixels")
    sums = blk.sum(axis=(1, 2))
    if not np.all(sums > 0):
        bad = int(np.flatnonzero(~(sums > 0))[0])
        raise ValueError(f"write_bank({path}): template {start + bad} has total flux {sums[bad]!r} <= 0")
    return (blk / sums[:, None, None]).astype(np.float32)


def write_bank(
    path: str | os.PathLike[str],
    images: np.ndarray | Any,
    meta: Mapping[str, Any],
    attrs: Mapping[str, Any],
    *,
    require_columns: bool = False,
) -> None:
    """Write a bank file atomically (temporary file, then rename); deterministic content for equal input.

    Parameters
    ----------
    path : output ``.h5`` path (local).
    images : (N, H, W) array of templates, or any object with ``shape``/``ndim`` and slice access (read
        in blocks of 256, e.g. an h5py dataset); stored as float32. Each is renormalised to sum to 1 in
        float64 before the cast (so sums are 1 within float32 rounding, ~1e-7).
    meta : column name -> length-N array (numeric). With ``require_columns`` every ``META_COLUMNS`` name
        must be present.
    attrs : must contain ``pixscale_arcsec`` (float, arcsec per template pixel); may contain
        ``source_catalog``, ``colour_source``, ``build_params`` (dict, stored as JSON) and ``created_utc``
        (default: now). ``stamp_size``, ``n``, ``format``, ``format_version``, ``dhs_version`` are set here.
    """
    if getattr(images, "ndim", None) != 3 or not hasattr(images, "shape"):
        images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"write_bank({path}): images must be (N, H, W), got shape {images.shape}")
    n, h, w = (int(v) for v in images.shape)
    if h != w:
        raise ValueError(f"write_bank({path}): templates must be square, got {h}x{w}")
    if "pixscale_arcsec" not in attrs or not float(attrs["pixscale_arcsec"]) > 0:
        raise ValueError(f"write_bank({path}): attrs['pixscale_arcsec'] must be a positive float (arcsec/pixel)")
    if require_columns:
        missing = [c for c in META_COLUMNS if c not in meta]
        if missing:
            raise ValueError(f"write_bank({path}): meta is missing columns {missing}")

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            ds = f.create_dataset(
                "images", shape=(n, h, w), dtype=np.float32, chunks=(1, h, w) if n else None,
                compression="gzip" if n else None, compression_opts=4 if n else None, shuffle=bool(n),
                track_times=False,
            )
            for start in range(0, n, _BLOCK):
                ds[start:start + _BLOCK] = _normalised_block(path, images, start, min(n, start + _BLOCK))
            grp = f.create_group("meta", track_order=True)
            for name in sorted(meta):
                col = np.asarray(meta[name])
                if col.shape != (n,):
                    raise ValueError(f"write_bank({path}): meta column {name!r} has shape {col.shape}, "
                                     f"expected ({n},)")
                if col.dtype.kind not in "biuf":
                    raise ValueError(f"write_bank({path}): meta column {name!r} must be numeric, "
                                     f"got dtype {col.dtype}")
                grp.create_dataset(name, data=col, track_times=False)
            a = f.attrs
            a["format"] = BANK_FORMAT
            a["format_version"] = BANK_FORMAT_VERSION
            a["n"] = n
            a["stamp_size"] = h
            a["pixscale_arcsec"] = float(attrs["pixscale_arcsec"])
            a["created_utc"] = str(attrs.get("created_utc") or
                                   datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            a["dhs_version"] = str(attrs.get("dhs_version") or _dhs_version())
            a["source_catalog"] = str(attrs.get("source_catalog", ""))
            a["colour_source"] = str(attrs.get("colour_source", "none"))
            a["build_params"] = json.dumps(attrs.get("build_params", {}), sort_keys=True, default=str)
            for k, v in attrs.items():
                if k not in a and k not in ("build_params",):
                    a[k] = v if isinstance(v, (int, float, np.number)) else str(v)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------------------------- S3 cache
_CACHE_LOCK = threading.Lock()
_S3_CACHE: dict[tuple[str, str | None], str] = {}


def _cache_dir() -> str:
    d = os.path.join(tempfile.gettempdir(), f"dhs-cosmos-cache-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(d, exist_ok=True)
    return d


def fetch_s3(url: str, s3_endpoint_url: str | None = None, s3_region: str | None = None) -> str:
    """Download ``url`` into the machine's temporary cache once and return the local path.

    Within a process, later calls return the cached path without touching S3. Across processes on the
    same machine (Spark Python workers of one executor), the cached file is reused when its recorded ETag
    still matches the object's (one HEAD request); otherwise it is downloaded again (atomic rename, so
    concurrent workers never read a partial file).
    """
    from dhs.io.paths import S3Options, s3_client, split_s3

    key = (url, s3_endpoint_url)
    with _CACHE_LOCK:
        if key in _S3_CACHE and os.path.exists(_S3_CACHE[key]):
            return _S3_CACHE[key]
        bucket, obj = split_s3(url)
        digest = hashlib.sha1(f"{url}|{s3_endpoint_url}".encode()).hexdigest()[:16]
        local = os.path.join(_cache_dir(), f"{digest}-{os.path.basename(obj) or 'bank.h5'}")
        client = s3_client(S3Options(endpoint_url=s3_endpoint_url, region=s3_region))
        where = f"COSMOS bank {url} (endpoint {s3_endpoint_url or 'default'})"
        try:
            etag = str(client.head_object(Bucket=bucket, Key=obj).get("ETag", ""))
        except Exception as exc:  # botocore raises several unrelated types; all mean "cannot read"
            raise CosmosBankError(f"cannot download {where}: {exc}") from exc
        tag_path = f"{local}.etag"
        cached_tag = None
        if os.path.exists(local) and os.path.exists(tag_path):
            with open(tag_path) as fh:
                cached_tag = fh.read()
        if cached_tag != etag:
            tmp = f"{local}.part-{os.getpid()}-{threading.get_ident()}"
            try:
                client.download_file(bucket, obj, tmp)
            except Exception as exc:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise CosmosBankError(f"cannot download {where}: {exc}") from exc
            os.replace(tmp, local)
            with open(f"{tag_path}.{os.getpid()}", "w") as fh:
                fh.write(etag)
            os.replace(f"{tag_path}.{os.getpid()}", tag_path)
        _S3_CACHE[key] = local
        return local


# ------------------------------------------------------------------------------------------------- reader
class CosmosBank:
    """Read access to a bank file. Use :meth:`open`; picklable (re-opens the file after unpickling)."""

    def __init__(self, local_path: str, source: str, lazy: bool = True,
                 s3: tuple[str | None, str | None] = (None, None)) -> None:
        self.path = local_path
        self.source = source
        self.lazy = lazy
        self._s3 = s3
        self._file: h5py.File | None = None
        self._dataset: h5py.Dataset | None = None  # /images of the open file (a lookup costs ~0.1 ms)
        self._images: np.ndarray | None = None
        self._load()

    # -------------------------------------------------------------------- construction
    @classmethod
    def open(cls, path_or_s3: str | os.PathLike[str], lazy: bool = True,
             s3_endpoint_url: str | None = None, s3_region: str | None = None) -> CosmosBank:
        """Open a bank from a local path or ``s3://bucket/key`` (downloaded once per process).

        Raises ``FileNotFoundError`` for a missing local file and :class:`CosmosBankError` for a file that
        is not a bank (not HDF5, wrong ``format`` attribute, missing datasets or attributes).
        """
        from dhs.io.paths import is_s3

        src = os.fspath(path_or_s3)
        if is_s3(src):
            local = fetch_s3(src.replace("s3a://", "s3://", 1), s3_endpoint_url, s3_region)
        else:
            local = src
            if not os.path.isfile(local):
                raise FileNotFoundError(f"COSMOS bank file not found: {local}")
        return cls(local, src, lazy=lazy, s3=(s3_endpoint_url, s3_region))

    def _load(self) -> None:
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise CosmosBankError(f"{self.source}: not a COSMOS source bank (not an HDF5 file: {exc})") from exc
        try:
            fmt = f.attrs.get("format")
            if isinstance(fmt, bytes):
                fmt = fmt.decode()
            if fmt != BANK_FORMAT:
                raise CosmosBankError(f"{self.source}: not a COSMOS source bank (attribute 'format' is "
                                      f"{fmt!r}, expected {BANK_FORMAT!r})")
            for req in ("pixscale_arcsec", "stamp_size", "n", "format_version"):
                if req not in f.attrs:
                    raise CosmosBankError(f"{self.source}: COSMOS bank is missing attribute {req!r}")
            if int(f.attrs["format_version"]) > BANK_FORMAT_VERSION:
                raise CosmosBankError(f"{self.source}: bank format_version {int(f.attrs['format_version'])} "
                                      f"is newer than this reader ({BANK_FORMAT_VERSION})")
            if "images" not in f or "meta" not in f:
                raise CosmosBankError(f"{self.source}: COSMOS bank lacks the 'images' dataset or 'meta' group")
            ds = f["images"]
            if ds.ndim != 3 or ds.shape[0] != int(f.attrs["n"]):
                raise CosmosBankError(f"{self.source}: 'images' has shape {ds.shape}, attribute n = "
                                      f"{int(f.attrs['n'])}")
            self.attrs: dict[str, Any] = {k: (v.decode() if isinstance(v, bytes) else v)
                                          for k, v in f.attrs.items()}
            self.build_params: dict[str, Any] = json.loads(self.attrs.get("build_params", "{}") or "{}")
            self._meta = {name: np.asarray(f["meta"][name][...]) for name in f["meta"]}
            for name, col in self._meta.items():
                if col.shape != (ds.shape[0],):
                    raise CosmosBankError(f"{self.source}: meta column {name!r} has shape {col.shape}, "
                                          f"expected ({ds.shape[0]},)")
            self._shape = ds.shape
            if self.lazy:
                self._file = f
            else:
                self._images = np.asarray(ds[...], dtype=np.float32)
                f.close()
        except Exception:
            f.close()
            raise

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "lazy": self.lazy, "s3": self._s3}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Re-open after unpickling; on another machine an S3 bank is fetched into that machine's cache."""
        from dhs.io.paths import is_s3

        path = state["path"]
        if not os.path.exists(path) and is_s3(state["source"]):
            path = fetch_s3(state["source"].replace("s3a://", "s3://", 1), *state["s3"])
        self.__init__(path, state["source"], state["lazy"], state["s3"])  # type: ignore[misc]

    def close(self) -> None:
        """Close the underlying HDF5 file (lazy mode)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._dataset = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n

    # -------------------------------------------------------------------- properties
    @property
    def n(self) -> int:
        """Number of templates."""
        return int(self._shape[0])

    @property
    def pixscale(self) -> float:
        """Template pixel scale, arcsec per pixel."""
        return float(self.attrs["pixscale_arcsec"])

    @property
    def stamp_size(self) -> int:
        """Template side, pixels."""
        return int(self._shape[1])

    @property
    def meta(self) -> pa.Table:
        """Per-galaxy metadata as a pyarrow Table (one row per template, in bank order)."""
        return pa.table({k: pa.array(v) for k, v in self._meta.items()})

    def column(self, name: str) -> np.ndarray:
        """One metadata column as a numpy array (KeyError naming the column and the file if absent)."""
        if name not in self._meta:
            raise KeyError(f"{self.source}: bank has no meta column {name!r} (has {sorted(self._meta)})")
        return self._meta[name]

    # -------------------------------------------------------------------- access
    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"{self.source}: template index {i} out of range [0, {self.n})")
        return i

    def template(self, i: int) -> np.ndarray:
        """Template ``i``: float32 (H, W) surface-brightness image with unit total flux (a fresh copy)."""
        i = self._check_index(i)
        if self._images is not None:
            return self._images[i].copy()
        if self._dataset is None:
            if self._file is None:
                self._file = h5py.File(self.path, "r")
            self._dataset = self._file["images"]
        return np.asarray(self._dataset[i], dtype=np.float32)

    def hlr(self, i: int) -> float:
        """Half-light radius of template ``i``, arcsec."""
        return float(self.column("hlr_arcsec")[self._check_index(i)])

    def colours(self, i: int) -> tuple[float, float]:
        """(g − r, r − z) of galaxy ``i`` in AB mag; NaN where the catalogue gave no colour."""
        i = self._check_index(i)
        gr = self._meta.get("color_gr")
        rz = self._meta.get("color_rz")
        return (float(gr[i]) if gr is not None else float("nan"),
                float(rz[i]) if rz is not None else float("nan"))
