#!/usr/bin/env bash
# EMR bootstrap action: make dhs importable by the executors' Python on every node.
#   bootstrap.sh s3://bucket/prefix/dist            (installs Python 3.11 and the wheel into /opt/dhs-venv)
# The steps then run with PYSPARK_PYTHON=/opt/dhs-venv/bin/python (submit.py --mode bootstrap).
# With --mode archive the packed environment is shipped by spark-submit --archives instead and this
# script only installs Python 3.11, which the packed environment's interpreter link expects.
set -euo pipefail
DIST=${1:?s3 URL of the folder holding dhs-*.whl and install-dhs.sh}
if ! command -v python3.11 >/dev/null 2>&1; then
  sudo dnf install -y python3.11 python3.11-pip >/dev/null
fi
work=$(mktemp -d)
aws s3 cp --recursive --exclude "*" --include "dhs-*.whl" --include "install-dhs.sh" "$DIST" "$work"
sudo python3.11 -m venv /opt/dhs-venv
sudo bash "$work/install-dhs.sh" /opt/dhs-venv/bin/python "$(ls "$work"/dhs-*.whl)"
rm -rf "$work"
