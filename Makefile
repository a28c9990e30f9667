# Two entry points for a newcomer: `make run` (the app) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MILVUS_TESTS := tests/stores/test_milvus_store.py tests/stores/test_store_contract.py

.PHONY: screenshots run test lint bench demo docs install install-dev

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=70.1"  # bdist_wheel built in: the editable install below uses no build isolation
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-ray.txt  # the optional Ray engine: its tests run in make test
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: install
	GRADIO_ANALYTICS_ENABLED=False $(PY) app.py

demo: install  # fill an empty collection with 2000 cars from Stanford Cars (see README, Demo collection)
	$(PY) -m admin demo

test: install-dev
	@# the Milvus server's tests run in their own process beside the rest, spread over the cores (pytest-xdist):
	@# one server per machine (fixed ports), which xdist's workers cannot share
	@mkdir -p build; HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest -q -p no:cacheprovider \
		$(MILVUS_TESTS) > build/milvus-tests.log 2>&1 & milvus=$$!; \
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadgroup \
		$(addprefix --ignore=,$(MILVUS_TESTS)); rest=$$?; \
	wait $$milvus; server=$$?; echo "--- Milvus server tests:"; cat build/milvus-tests.log; \
	test $$rest -eq 0 && test $$server -eq 0

lint: install-dev
	$(PY) -m ruff check carmatch admin app.py tests bench
	$(PY) -m ruff format --check carmatch admin app.py tests bench
	$(PY) -m mypy carmatch admin

bench: install  # each writes bench/results/<name>.json where it can; report.py turns them into docs/benchmarks.md
	$(PY) bench/search_bench.py
	$(PY) bench/train_bench.py
	$(PY) bench/ann_bench.py
	$(PY) bench/api_bench.py
	$(PY) bench/report.py

screenshots: install-dev  # refresh docs/screenshots from the browser tests
	CARMATCH_SCREENSHOTS=$(CURDIR)/docs/screenshots HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(PY) -m pytest -q tests/browser

docs: install-dev  # regenerate the reference pages, then build the site (broken links and missing pages are errors)
	$(PY) -m admin.reference --write docs/reference
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
