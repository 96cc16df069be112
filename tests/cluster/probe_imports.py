"""spark-submit probe (tests only): where dhs, its grids and its demo config are read from on the driver and
on the executors, written as JSON to the file named by the first argument.

    spark-submit ... probe_imports.py OUT.json [JOB.py JOB-ARGS ...]

With a job script after OUT.json, the probe first runs that job in its own driver (as spark-submit would run
it: ``__main__``, ``sys.argv`` = the script and its arguments) and probes afterwards, so that the modules the
job imported on the driver, and the executors' Python workers that ran its tasks, are the ones probed.
"""

import json
import os
import runpy
import sys


def where(_=None):
    import importlib.resources

    import dhs
    from dhs.sampling.grids import load_grid

    files = sorted({os.path.abspath(f) for f in (getattr(m, "__file__", None) for m in list(sys.modules.values()))
                    if f})
    return {"dhs": dhs.__file__, "grid_small": load_grid("grid_small").source,
            "demo_config": str(importlib.resources.files("dhs").joinpath("presets/debug.yaml")),
            "cwd": os.getcwd(), "sys_path": [os.path.abspath(p) for p in sys.path if p], "module_files": files,
            "python": sys.executable,
            "pyspark": sys.modules["pyspark"].__file__ if "pyspark" in sys.modules else None}


if __name__ == "__main__":
    out, job = sys.argv[1], sys.argv[2:]
    if job:
        sys.argv = job
        try:
            runpy.run_path(job[0], run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("dhs-probe").getOrCreate()
    executors = spark.sparkContext.parallelize(range(8), 8).map(lambda i: json.dumps(where(i))).distinct().collect()
    # written to a file: a long stdout line can interleave with the JVM's own log lines
    with open(out, "w") as fh:
        json.dump({"driver": where(), "executors": [json.loads(e) for e in executors]}, fh)
    spark.stop()
