# The two commands a newcomer needs:  make reproduce   and   make test
# Both create .venv if missing and install the project with its pinned dependencies.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PRESET ?= quick
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: test reproduce venv install lab browser-test unit nbtest nbref smoke bench snapshot clean help

help:
	@echo "make install    - only install: create .venv with the pinned dependencies (same as make venv)"
	@echo "make lab        - install and start JupyterLab; notebooks/*.py open as notebooks (outputs: results/lab/)"
	@echo "make test       - install (fresh .venv) and run library tests + notebooks under nbval (smoke)"
	@echo "make reproduce  - install and execute every notebook at PRESET=$(PRESET) into results/$(PRESET)/"
	@echo "make browser-test - screenshot a notebook in JupyterLab with headless Chromium (apt) and check it"
	@echo "make nbref      - regenerate the smoke-preset reference notebooks in tests/notebooks/"
	@echo "make bench      - run the benchmarks (JSON on stdout)"
	@echo "make snapshot   - copy results/quick/SCORECARD.md and results/quick/figures to reports/quick/ (kept in git)"
	@echo "make student    - write the student notebooks (no solution cells) to $(STUDENT_OUT)/"
	@echo "make html       - render the executed notebooks in $(HTML_FROM)/ as offline HTML in reports/$(PRESET)/html/"
	@echo "make mutation   - mutation-test the core modules (mutmut); writes benchmarks/measured/mutation_score.json"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (jointtask)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)
install: $(STAMP)

# JupyterLab on the project: the shipped setting (jupyter-config/labconfig) opens notebooks/*.py as
# notebooks; jupytext.toml keeps the .py byte-identical on save and pairs it with
# results/lab/notebooks/<name>.ipynb (outputs); figures and claims go to results/lab/.
LAB_ENV := JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} JOINTTASK_LABEL=lab
LAB_ARGS ?=
lab: $(STAMP)
	$(LAB_ENV) $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Headless Chromium (Debian's package, installed with apt-get when missing) opens a notebook in a
# JupyterLab started on a loopback port and checks that it rendered as a notebook; the screenshot
# is build/browser-test/lab.png.
browser-test: $(STAMP)
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(LAB_ENV) $(PY) tests/browser_check.py --out build/browser-test

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
	$(PY) -m jointtask_lib.cli notebooks --preset $(PRESET)
	$(PY) -m jointtask_lib.cli report --label $(PRESET)

bench: $(STAMP)
	$(PY) benchmarks/data_throughput.py --json
	$(PY) benchmarks/train_throughput.py --json

# Mutation testing of the core modules (benchmarks/mutation.yaml); MODULES=train,model for a subset.
.PHONY: mutation
mutation: $(STAMP)
	$(PY) benchmarks/mutation.py --modules "$(MODULES)" >/dev/null

# Keep a finished quick run's scorecard and figures in the repository (reports/quick/).
snapshot:
	test -f results/quick/SCORECARD.md
	rm -rf reports/quick && mkdir -p reports/quick
	cp results/quick/SCORECARD.md reports/quick/ && cp -r results/quick/figures reports/quick/figures

# Course material (notebooks/README.md): student notebooks without the solution cells, and offline
# HTML renders of executed notebooks, e.g. make html PRESET=lesson HTML_FROM=results/lesson/notebooks
STUDENT_OUT ?= build/student
HTML_FROM   ?= results/$(PRESET)/notebooks
.PHONY: student html

student: $(STAMP)
	$(PY) -m jointtask_lib.course student --out $(STUDENT_OUT)

html: $(STAMP)
	$(PY) -m jointtask_lib.course html --src $(HTML_FROM) --out reports/$(PRESET)/html \
		--title "jointtask notebooks, executed at the $(PRESET) preset"

clean:
	rm -rf build results/notebooks results/figures results/*/notebooks results/*/figures
