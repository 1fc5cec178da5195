# AE Lab: `make run` starts the app, `make test` runs the whole test suite.
# Both create .venv on first use and reinstall only when a requirements file changes.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8501
PY     := $(VENV)/bin/python

.PHONY: run dev test lint docs bench examples data browser translations clean

run: $(VENV)/.runtime data
	$(PY) -m pages.shared.serve run streamlit_app.py --server.port $(PORT)

# Like `run`, but reloads pages when their files change.
dev: $(VENV)/.runtime data
	$(PY) -m pages.shared.serve run streamlit_app.py --server.port $(PORT) --server.fileWatcherType auto --server.runOnSave true

test: lint data browser
	$(PY) -m pytest

# Ruff (pyflakes, pycodestyle errors, import order; no torch in pages/) and the layers of aelab (import-linter).
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The documentation site (docs/, mkdocs.yml) into site/, offline; --strict fails on a broken link or reference.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.dev data browser
	$(PY) -m bench

# After changing a message of the app: extract them all (babel.cfg), bring the catalogs up to date (new messages
# come in untranslated, `make test` says which), and compile them. See docs/languages.md.
# The messages: _() and N_() in pages and aelab, and the templates of the errors pages show (aelab.errors).
LOCALES := aelab/locales
KEYWORDS := -k N_ -k said -k ConfigError -k TrainingDiverged -k DataError -k UploadError -k RunError -k JobRefused
translations: $(VENV)/.dev
	$(VENV)/bin/pybabel extract -F babel.cfg $(KEYWORDS) --no-location --sort-output --project "AE Lab" \
		-o $(LOCALES)/aelab.pot streamlit_app.py pages aelab
	$(VENV)/bin/pybabel update -i $(LOCALES)/aelab.pot -d $(LOCALES) -D aelab --no-fuzzy-matching --ignore-obsolete
	$(VENV)/bin/pybabel compile -d $(LOCALES) -D aelab --statistics

# Retrain the example runs shipped in examples/ (read-only in the app).
examples: $(VENV)/.runtime data
	$(PY) scripts/train_examples.py

data:
	@scripts/apt-ensure $$(cat packages.txt)

browser:
	@scripts/apt-ensure chromium fonts-wqy-microhei   # the font: Chinese pages in the headless screenshots

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "AE Lab needs Python >= 3.10, this is " + sys.version.split()[0]'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -c 'import aelab.latent; aelab.latent.compile_umap()'   # numba's cache: a first UMAP without waiting
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-ray.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -r requirements-ray.txt
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache site
