"""spark-submit entry point of stage 6.

    spark-submit jobs/stage6_real_lens_sets.py --config CONFIG.yaml [--set key=value ...]
"""

import sys

from dhs.cli import run_stage_job

if __name__ == "__main__":
    sys.exit(run_stage_job("6"))
