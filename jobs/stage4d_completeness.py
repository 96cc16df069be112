"""spark-submit entry point of stage 4d.

    spark-submit jobs/stage4d_completeness.py --config CONFIG.yaml [--set key=value ...]
"""

import sys

from dhs.cli import run_stage_job

if __name__ == "__main__":
    sys.exit(run_stage_job("4d"))
