# dhs — the two set-up commands for a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dhs-installed

.PHONY: install demo test test-fast bench lint docs dist clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/check_java.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[reference,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dhs demo --out build/demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not cluster and not s3"

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

docs: $(STAMP)
	$(VENV)/bin/dhs config-reference --out docs/config-reference.md

lint: $(STAMP)
	$(VENV)/bin/ruff check dhs jobs tests benchmarks scripts

clean:
	rm -rf build dist .pytest_cache

# Executor packaging: the dhs wheel and a packed virtual environment (no pyspark: the cluster's Spark is used)
#   spark-submit --archives dist/dhs-env.tar.gz#environment \
#                --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python ...
dist: $(STAMP)
	rm -rf dist build/dist-env
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	$(PYTHON) -m venv build/dist-env
	bash docker/install-dhs.sh build/dist-env/bin/python "$$(ls dist/dhs-*.whl)"
	$(VENV)/bin/venv-pack --quiet -p build/dist-env -o dist/dhs-env.tar.gz
	@ls -la dist
