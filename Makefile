# The two commands a newcomer needs:  make reproduce   and   make test
# Both create .venv if missing and install the project with its pinned dependencies.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PRESET ?= quick
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: test reproduce venv unit nbtest nbref smoke bench snapshot clean help

help:
	@echo "make test       - install (fresh .venv) and run library tests + notebooks under nbval (smoke)"
	@echo "make reproduce  - install and execute every notebook at PRESET=$(PRESET) into results/"
	@echo "make nbref      - regenerate the smoke-preset reference notebooks in tests/notebooks/"
	@echo "make bench      - run the benchmarks (JSON on stdout)"
	@echo "make snapshot   - copy results/SCORECARD.md and results/figures to reports/quick/ (kept in git)"
	@echo "make mutation   - mutation-test the core modules (mutmut); writes benchmarks/measured/mutation_score.json"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (jointtask)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# Library tests and the notebooks (nbval compares the marked cells against the reference copies).
test: $(STAMP)
	TQDM_DISABLE=1 JOINTTASK_RESULTS=$(CURDIR)/build/test-results $(PY) -m pytest -q \
		tests --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider

unit: $(STAMP)
	TQDM_DISABLE=1 $(PY) -m pytest -q tests --ignore=tests/notebooks -p no:cacheprovider

nbtest: $(STAMP)
	TQDM_DISABLE=1 JOINTTASK_RESULTS=$(CURDIR)/build/test-results $(PY) -m pytest -q tests/notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

# Re-execute the notebooks at the smoke preset and store them (with outputs) as nbval references.
nbref: $(STAMP)
	TQDM_DISABLE=1 JOINTTASK_RESULTS=$(CURDIR)/build/nbref-results $(PY) -m jointtask_lib.cli notebooks \
		--preset smoke --out tests/notebooks --reference

reproduce: $(STAMP)
	$(PY) -m jointtask_lib.cli notebooks --preset $(PRESET) --out results/notebooks
	$(PY) -m jointtask_lib.cli report --results results

bench: $(STAMP)
	$(PY) benchmarks/data_throughput.py --json
	$(PY) benchmarks/train_throughput.py --json

# Mutation testing of the core modules (benchmarks/mutation.yaml); MODULES=train,model for a subset.
.PHONY: mutation
mutation: $(STAMP)
	$(PY) benchmarks/mutation.py --modules "$(MODULES)" >/dev/null

# Keep a finished quick run's scorecard and figures in the repository (reports/quick/).
snapshot:
	test -f results/SCORECARD.md
	rm -rf reports/quick && mkdir -p reports/quick
	cp results/SCORECARD.md reports/quick/ && cp -r results/figures reports/quick/figures

clean:
	rm -rf build results/notebooks results/figures
