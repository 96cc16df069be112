# dhs — the two set-up commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dhs-installed

.PHONY: install demo test test-fast bench lint dist clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/check_java.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[spark,reference,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dhs demo --out build/demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not cluster"

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check dhs jobs tests benchmarks scripts

clean:
	rm -rf build dist .pytest_cache

# Executor packaging: the dhs wheel and a packed virtual environment (no pyspark: the cluster's Spark is used)
#   spark-submit --archives dist/dhs-env.tar.gz#environment \
#                --conf spark.pyspark.python=./environment/bin/python ...
# DIST / DIST_ENV move the outputs (tests/cluster builds into a temporary folder).
DIST     ?= dist
DIST_ENV ?= build/dist-env
dist: $(STAMP)
	rm -rf $(DIST) $(DIST_ENV) build/lib   # build/lib: setuptools would pack stale copies of removed modules
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	$(PYTHON) -m venv $(DIST_ENV)
	bash docker/install-dhs.sh $(DIST_ENV)/bin/python "$$(ls $(DIST)/dhs-*.whl)"
	$(VENV)/bin/venv-pack --quiet -p $(DIST_ENV) -o $(DIST)/dhs-env.tar.gz
	@ls -la $(DIST)
