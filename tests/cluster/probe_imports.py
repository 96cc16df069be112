"""spark-submit probe (tests only): where dhs, its grids and its demo config are read from on the driver
and on the executors; prints one line ``PROBE <json>``."""

import json
import os
import sys


def where(_=None):
    import importlib.resources

    import dhs
    from dhs.sampling.grids import load_grid

    files = sorted({os.path.abspath(f) for f in (getattr(m, "__file__", None) for m in list(sys.modules.values()))
                    if f})
    return {"dhs": dhs.__file__, "grid_small": load_grid("grid_small").source,
            "demo_config": str(importlib.resources.files("dhs").joinpath("presets/debug.yaml")),
            "cwd": os.getcwd(), "sys_path": [os.path.abspath(p) for p in sys.path if p], "module_files": files, "python": sys.executable,
            "pyspark": sys.modules["pyspark"].__file__ if "pyspark" in sys.modules else None}


if __name__ == "__main__":
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("dhs-probe").getOrCreate()
    executors = spark.sparkContext.parallelize(range(8), 8).map(lambda i: json.dumps(where(i))).distinct().collect()
    # written to the file named by argv[1]: a long stdout line can interleave with the JVM's own log lines
    with open(sys.argv[1], "w") as fh:
        json.dump({"driver": where(), "executors": [json.loads(e) for e in executors]}, fh)
    spark.stop()
