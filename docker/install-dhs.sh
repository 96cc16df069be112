#!/usr/bin/env bash
# Install the dhs wheel and its runtime dependencies into a Python environment. PySpark is not among them
# (it is the optional extra dhs[spark]): on a cluster (EMR, a Spark image, a standalone cluster) Spark's own
# PySpark is used. Used by docker/Dockerfile and by `make dist` (which packs the result with venv-pack), so
# the cluster tests that run on the packed environment also check the image's install step.
#   usage: docker/install-dhs.sh PYTHON WHEEL
set -euo pipefail
PY=${1:?python interpreter}
WHEEL=${2:?path to the dhs wheel}
"$PY" -m pip install --quiet --disable-pip-version-check "$WHEEL"
"$PY" -c "import dhs, numpy, scipy, astropy, pyarrow, h5py, xxhash; print('dhs installed:', dhs.__file__)"
