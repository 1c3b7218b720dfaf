# The two commands a newcomer needs: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench soak clean venv sysdeps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
	  || { echo "installing python3-venv (Debian)"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: venv
	$(PY) -m daemon.demo $(if $(WATCH),--watch)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -m "not soak"

# Debian packages the tests need (chromium, espeak-ng, fonts; mmdebstrap, systemd-container),
# installed when missing and running as root; see docs/testing.md.
sysdeps:
	sh hil/test_deps.sh
	sh firmware/rootfs/ensure-host-tools.sh

test: sysdeps lint typecheck unit

# The benchmarks drive Chromium (ui.*) and a throwaway PostgreSQL (sync.drain_postgres_*).
bench: venv
	sh hil/test_deps.sh
	$(PY) -m hil.bench

soak: sysdeps venv
	$(PY) -m pytest -m soak --timeout 7200

clean:
	rm -rf $(VENV) .demo bench-results.json .mypy_cache .pytest_cache .ruff_cache
