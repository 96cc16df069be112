"""Pure (numpy/arrow) selection and manifest logic: LRG cuts, regions, splits, ranking, hashing."""

from .lrg import LRG_VARIANTS, lrg_flags
