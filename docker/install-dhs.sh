#!/usr/bin/env bash
# Install dhs and its runtime dependencies into a Python environment, WITHOUT pyspark/py4j:
# on a cluster (EMR, a Spark image, a standalone cluster) Spark's own PySpark must be used.
# Used by docker/Dockerfile and by `make dist` (which packs the result with venv-pack), so the
# cluster test that runs on the packed environment also checks the image's install step.
#   usage: docker/install-dhs.sh PYTHON WHEEL
set -euo pipefail
PY=${1:?python interpreter}
WHEEL=${2:?path to the dhs wheel}
reqs=$(mktemp)
"$PY" - "$WHEEL" >"$reqs" <<'PYEOF'
import sys, zipfile, email.parser
wheel = sys.argv[1]
with zipfile.ZipFile(wheel) as zf:
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    msg = email.parser.Parser().parsestr(zf.read(meta).decode())
for req in msg.get_all("Requires-Dist") or []:
    if "extra ==" in req:
        continue
    name = req.split(";")[0].strip()
    if name.lower().startswith(("pyspark", "py4j")):
        continue
    print(name)
PYEOF
"$PY" -m pip install --quiet --disable-pip-version-check -r "$reqs"
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps "$WHEEL"
rm -f "$reqs"
"$PY" -c "import dhs, numpy, scipy, astropy, pyarrow, h5py, xxhash; print('dhs installed:', dhs.__file__)"
