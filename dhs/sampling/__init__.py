"""Pure (numpy/arrow) selection and manifest logic: LRG cuts, regions, splits, ranking, hashing."""

# stage 4a: grids, priors, stratification, controls, known lenses, manifest
from .controls import control_ratio, controls_per_cell, match_controls
from .grids import BUILTIN_GRIDS, Grid, GridConfig, GridError, config_id, grid_from_dict, load_grid
from .known_lenses import near_known_lens, read_known_lenses
from .lrg import LRG_VARIANTS, lrg_flags
from .manifest import ManifestError, ManifestResult, ManifestTooLarge, build_manifest
from .priors import DEFAULT_PRIORS, PARAMETERS, Distribution, PriorError, Priors, draw_priors, parse_priors
from .stratify import assign_bins, quantile_edges
