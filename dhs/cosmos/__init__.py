"""COSMOS real-galaxy source bank: builder (GalSim RealGalaxyCatalog → HDF5), reader and per-task selection.

``dhs.cosmos.bank``: :class:`CosmosBank` reader and :func:`write_bank`; ``dhs.cosmos.builder``:
:func:`build_bank` (needs GalSim); ``dhs.cosmos.selection``: deterministic template choice for stage 4c.
"""

from dhs.cosmos.bank import BANK_FORMAT, META_COLUMNS, CosmosBank, CosmosBankError, write_bank
from dhs.cosmos.selection import (
    CosmosChoice,
    band_fluxes,
    choose_cosmos_source,
    choose_template,
    resolve_colours,
    size_scale,
    template_orientation,
)

__all__ = [
    "BANK_FORMAT",
    "META_COLUMNS",
    "CosmosBank",
    "CosmosBankError",
    "CosmosChoice",
    "band_fluxes",
    "choose_cosmos_source",
    "choose_template",
    "resolve_colours",
    "size_scale",
    "template_orientation",
    "write_bank",
]
