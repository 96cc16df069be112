"""Named injection grids: the Cartesian product of lens/source parameter values.

A grid is a YAML file (``dhs/grids/<name>.yaml``) with one list of values per axis::

    name: grid_small
    theta_e_arcsec: [0.3, 0.6, 1.0]     # SIE Einstein radius (arcsec)
    src_dmag: [1.0, 2.0]                # source r mag minus host r mag (mag)
    src_reff_arcsec: [0.08, 0.15]       # source Sersic half-light radius (arcsec)
    src_e: [0.0, 0.3]                   # source ellipticity modulus |e| (lenstronomy e1, e2 convention)
    shear: [0.0, 0.03]                  # external shear modulus |gamma|

An axis may also be given as an inclusive range ``{start: 0.5, stop: 2.5, step: 0.25}``.
Configs are enumerated in product order θE → dmag → reff → e → shear (θE slowest, shear fastest), and each
has a stable ``config_id`` that spells out its values, e.g. ``te0.30_dm1.00_re0.080_e0.00_sh0.030``.
Angles (lens/source/shear position angles) are not grid axes: they come from the priors.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

AXES: tuple[str, ...] = ("theta_e_arcsec", "src_dmag", "src_reff_arcsec", "src_e", "shear")
"""Grid axes in product order (first = slowest varying)."""

_ID_PREFIX = {"theta_e_arcsec": "te", "src_dmag": "dm", "src_reff_arcsec": "re", "src_e": "e", "shear": "sh"}
_ID_DECIMALS = {"theta_e_arcsec": 2, "src_dmag": 2, "src_reff_arcsec": 3, "src_e": 2, "shear": 3}
_AXIS_MIN = {"theta_e_arcsec": (0.0, False), "src_dmag": (-math.inf, True), "src_reff_arcsec": (0.0, False),
             "src_e": (0.0, True), "shear": (0.0, True)}
_AXIS_MAX = {"src_e": 1.0, "shear": 1.0}

BUILTIN_GRIDS: tuple[str, ...] = ("grid_small", "grid_medium", "grid_full", "grid_wide", "grid_sota", "v4_sota")
"""Grids shipped in ``dhs/grids``: ``grid_small`` and ``grid_sota``/``v4_sota`` hold the seed system's values
(its documents' tables); ``grid_medium``, ``grid_full`` and ``grid_wide`` are dhs's own."""


class GridError(ValueError):
    """A grid file or grid definition is invalid; the message names the file and key."""


@dataclass(frozen=True)
class GridConfig:
    """One point of a grid: lens and source parameters shared by every host that receives it."""

    config_id: str
    theta_e_arcsec: float
    src_dmag: float
    src_reff_arcsec: float
    src_e: float
    shear: float


@dataclass(frozen=True)
class Grid:
    """A named grid; ``axes`` maps each axis in :data:`AXES` to its tuple of values."""

    name: str
    axes: dict[str, tuple[float, ...]]
    source: str = "<dict>"

    @property
    def size(self) -> int:
        """Number of configs (product of the axis lengths)."""
        return math.prod(len(self.axes[a]) for a in AXES)

    def configs(self) -> list[GridConfig]:
        """All configs in product order θE → dmag → reff → e → shear."""
        out = []
        for values in itertools.product(*(self.axes[a] for a in AXES)):
            kw = dict(zip(AXES, values))
            out.append(GridConfig(config_id=config_id(**kw), **kw))
        return out

    def config_ids(self) -> list[str]:
        """The ``config_id`` of every config, in product order."""
        return [c.config_id for c in self.configs()]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (name, source file, axis values, size)."""
        return {"name": self.name, "source": self.source, "size": self.size,
                **{a: list(self.axes[a]) for a in AXES}}


def _format_value(value: float, decimals: int) -> str:
    """Fixed-point text of ``value`` with at least ``decimals`` decimals, more if needed to be exact."""
    for d in range(decimals, 13):
        text = f"{value:.{d}f}"
        if float(text) == value:
            return text
    return repr(float(value))


def config_id(theta_e_arcsec: float, src_dmag: float, src_reff_arcsec: float, src_e: float, shear: float) -> str:
    """Stable identifier naming a config's values, e.g. ``te0.30_dm1.00_re0.080_e0.00_sh0.030``.

    Each value is printed with a fixed number of decimals (θE, dmag, e: 2; reff, shear: 3), extended only when
    a value needs more digits to be represented exactly, so different values never share an id.
    """
    vals = {"theta_e_arcsec": theta_e_arcsec, "src_dmag": src_dmag, "src_reff_arcsec": src_reff_arcsec,
            "src_e": src_e, "shear": shear}
    return "_".join(f"{_ID_PREFIX[a]}{_format_value(float(vals[a]), _ID_DECIMALS[a])}" for a in AXES)


def _axis_values(raw: Any, axis: str, where: str) -> tuple[float, ...]:
    if isinstance(raw, Mapping):
        keys = set(raw)
        if keys != {"start", "stop", "step"}:
            raise GridError(f"{where}: {axis}: a range needs exactly the keys start, stop, step (got {sorted(keys)})")
        try:
            start, stop, step = (float(raw[k]) for k in ("start", "stop", "step"))
        except (TypeError, ValueError) as exc:
            raise GridError(f"{where}: {axis}: range values must be numbers (got {dict(raw)})") from exc
        if step <= 0 or stop < start:
            raise GridError(f"{where}: {axis}: range needs step > 0 and stop >= start (got {dict(raw)})")
        n = math.floor((stop - start) / step + 1e-9) + 1
        values: list[float] = [round(start + i * step, 10) for i in range(n)]
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        values = []
        for i, v in enumerate(raw):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise GridError(f"{where}: {axis}[{i}]: expected a number (got {v!r})")
            values.append(float(v))
    else:
        raise GridError(f"{where}: {axis}: expected a list of numbers or {{start, stop, step}} (got {raw!r})")
    if not values:
        raise GridError(f"{where}: {axis}: needs at least one value")
    lo, inclusive = _AXIS_MIN[axis]
    hi = _AXIS_MAX.get(axis, math.inf)
    for i, v in enumerate(values):
        if not math.isfinite(v) or v < lo or (v == lo and not inclusive) or v >= hi:
            bound = f"{'>=' if inclusive else '>'} {lo}" + (f" and < {hi}" if hi < math.inf else "")
            raise GridError(f"{where}: {axis}[{i}] = {v}: expected a finite value {bound}")
    if len(set(values)) != len(values):
        raise GridError(f"{where}: {axis}: duplicate values {values}")
    return tuple(values)


def grid_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Grid:
    """Validate a grid definition (the content of a grid YAML) and return a :class:`Grid`."""
    if not isinstance(data, Mapping):
        raise GridError(f"{source}: expected a mapping with keys name, {', '.join(AXES)}")
    unknown = set(data) - set(AXES) - {"name", "description"}
    if unknown:
        raise GridError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: name, description, {', '.join(AXES)}")
    missing = [a for a in AXES if a not in data]
    if missing:
        raise GridError(f"{source}: missing axis key(s) {missing}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise GridError(f"{source}: name: expected a non-empty string (got {name!r})")
    axes = {a: _axis_values(data[a], a, source) for a in AXES}
    return Grid(name=name, axes=axes, source=source)


def packaged_grids_dir() -> Path:
    """The named grids shipped inside the ``dhs`` package (``dhs/grids/*.yaml``, package data)."""
    return Path(str(importlib.resources.files("dhs") / "grids"))


def grid_search_dirs(extra_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for ``<name>.yaml``, first match wins: ``extra_dir``, ``$DHS_GRIDS_DIR``, the package's."""
    dirs: list[Path] = []
    if extra_dir:
        dirs.append(Path(extra_dir))
    if os.environ.get("DHS_GRIDS_DIR"):
        dirs.append(Path(os.environ["DHS_GRIDS_DIR"]))
    dirs.append(packaged_grids_dir())
    return dirs


def resolve_grid_path(name_or_path: str, grids_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a grid given by name (``grid_small``) or by a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not p.is_file():
            raise GridError(f"grid file not found: {p}")
        return p
    dirs = grid_search_dirs(grids_dir)
    for d in dirs:
        for ext in (".yaml", ".yml"):
            cand = d / f"{name_or_path}{ext}"
            if cand.is_file():
                return cand
    raise GridError(f"grid {name_or_path!r} not found; looked for {name_or_path}.yaml in {[str(d) for d in dirs]}")


def load_grid(name_or_path: str, grids_dir: str | os.PathLike[str] | None = None) -> Grid:
    """Load a named grid (``dhs/grids/<name>.yaml``) or a user grid YAML file."""
    path = resolve_grid_path(name_or_path, grids_dir)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML: {exc}") from exc
    grid = grid_from_dict(data, source=str(path))
    if Path(name_or_path).suffix not in (".yaml", ".yml") and grid.name != name_or_path:
        raise GridError(f"{path}: name: {grid.name!r} differs from the file's grid name {name_or_path!r}")
    return grid


def available_grids(grids_dir: str | os.PathLike[str] | None = None) -> list[Grid | GridError]:
    """Every named grid that :func:`load_grid` would find, sorted by name (first folder of
    :func:`grid_search_dirs` wins); a file that does not load is returned as its :class:`GridError`."""
    found: dict[str, Path] = {}
    for d in grid_search_dirs(grids_dir):
        if d.is_dir():
            for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
                found.setdefault(path.stem, path)
    out: list[Grid | GridError] = []
    for name in sorted(found):
        try:
            out.append(load_grid(name, grids_dir))
        except GridError as exc:
            out.append(exc)
    return out
