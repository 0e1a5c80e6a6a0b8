# Two commands on a fresh machine:  make demo  (the main job)  and  make test  (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint venv clean-storage screenshot

# Installs the pinned versions (constraints.txt); torch is pinned to its CPU build on this disk.
$(BIN)/hpstudy: pyproject.toml constraints.txt
	@echo "Installing the pinned versions into $(VENV) (2-3 minutes, once)..."
	$(PYTHON) -m venv $(VENV)
	@# -qq: pip's own warnings about this machine's index configuration are not the user's business;
	@# errors still show.
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -c constraints.txt -e '.[dev]'
	touch $@

venv: $(BIN)/hpstudy

# Runs the quickstart (unless this storage already holds it), then writes its report and prints
# the one-sentence verdict and the report's path.
demo: venv
	@if $(BIN)/hpstudy list --experiment quickstart 2>/dev/null | grep -q 'quickstart\.'; then \
		echo "quickstart was already run (to run it again: $(BIN)/hpstudy delete quickstart --yes; make demo)"; \
	else \
		$(BIN)/hpstudy create studies/quickstart.toml || exit $$?; \
	fi
	@$(BIN)/hpstudy report quickstart
	@echo "Open the report in any browser; '$(BIN)/hpstudy dashboard' browses every trial."

# The PostgreSQL and browser tests skip without a server or Chromium; a PostgreSQL already
# listening on 127.0.0.1:5432 (trust auth, as .ci/run sets up) is used when the variable is unset.
test: venv
	@if [ -z "$$HPSTUDY_TEST_POSTGRES_URL" ] && command -v pg_isready >/dev/null 2>&1 \
		&& pg_isready -q -h 127.0.0.1 -p 5432; then \
		export HPSTUDY_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test; \
	fi; $(BIN)/pytest -q -n 2 --dist loadfile

lint: venv
	$(BIN)/ruff check hpstudy tests benchmarks scripts
	$(BIN)/ruff format --check hpstudy tests benchmarks scripts
	$(BIN)/mypy

# The README's picture of a report (docs/report.png), taken in headless Chromium.
screenshot: venv
	$(BIN)/python scripts/screenshot.py
