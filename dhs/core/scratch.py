"""Reusable scratch arrays for the renderer's stamp-sized temporaries.

A stamp's sub-pixel grid (e.g. 194 x 194 float32 = 150 KB) is larger than glibc's default trim threshold
(128 KB).  Where the mmap threshold is fixed by the environment (``MALLOC_MMAP_THRESHOLD_``) and the trim
threshold is not raised with it (``MALLOC_TRIM_THRESHOLD_``, as dhs's EMR and Docker settings do), glibc
stops adapting its trim threshold, so every such temporary freed at the top of the heap is
returned to the kernel and the next one is page-faulted back in: measured here, that made a per-band
render 25–40 % slower.  The renderer therefore takes its intermediate grids from this per-thread pool,
keyed by a name, shape and dtype, and writes them with ``out=``; results handed back to callers are
always fresh arrays.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["scratch_array"]

#: pools larger than this many arrays are emptied (grids of many different shapes: not a steady state)
_MAX_ARRAYS = 64
_local = threading.local()


def scratch_array(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array from this thread's pool: the same object for the same (name, shape, dtype).

    The caller owns it only until its next request of the same key: never return it to user code.
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    key = (name, tuple(shape), np.dtype(dtype).str)
    arr = pool.get(key)
    if arr is None:
        if len(pool) >= _MAX_ARRAYS:
            pool.clear()
        arr = pool[key] = np.empty(shape, dtype=dtype)
    return arr
