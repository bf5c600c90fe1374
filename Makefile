# Two commands on a fresh machine (Python 3.11+ and the package index are all it needs):
#   make quickstart    the main job: flanlab quickstart on $(DATA_DIR); rerun it to resume
#   make test          lint and the whole test suite, as CI runs it (.ci/run is `make test`)
# Both create .venv when missing and install into it once: a stamp keyed on pyproject.toml, the
# extras and the torch requirement skips the install until one of those changes.
# Variables (make VAR=value ...):
#   EXTRAS       the package's extras, comma-separated: one list for both targets
#   TORCH        the torch requirement installed before the package; torch==2.13.0 is the CPU build on
#                our machines (taken from local disk). Elsewhere PyPI's Linux torch is a CUDA build of
#                several GB: add TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one, or
#                the CUDA index matching your driver.
#   PYTHON       the interpreter that creates .venv (default: the first of python3, python3.11, python3.12,
#                python3.13 that is 3.11+; the torch file on our disks is for 3.11)
#   DATA_DIR     make quickstart's --data-dir;  QUICKSTART_ARGS  more quickstart flags (--steps 10, ...)

EXTRAS ?= dev,serve,gguf,plots
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
DATA_DIR ?= ../shared/data
QUICKSTART_ARGS ?=
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3 python3.11 python3.12 python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
endif

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flanlab-installed-$(shell { printf '%s\n' '$(EXTRAS)' '$(TORCH)' '$(TORCH_INDEX)'; \
	cat pyproject.toml; } | sha256sum | cut -c1-16)
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(PY) -m pip
# On a failed pip: one line naming the reason (the index unreachable, or pip's own last error).
PIP_FAIL = { if grep -qE 'NewConnectionError|Failed to establish|Temporary failure in name resolution|Max retries exceeded|ConnectTimeout|ReadTimeout|Network is unreachable|ProxyError' $(VENV)/install.log; \
	then echo "make: cannot reach the package index: $(1) not installed (details: $(VENV)/install.log)" >&2; \
	else echo "make: pip could not install $(1): $$(grep -E '^ERROR' $(VENV)/install.log | tail -n1) (details: $(VENV)/install.log)" >&2; fi; exit 1; }

export PYTHONUNBUFFERED := 1

.PHONY: quickstart test lint install chromium

quickstart: install
	$(VENV)/bin/flanlab quickstart --data-dir $(DATA_DIR) $(QUICKSTART_ARGS)

test: install chromium lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

install: $(STAMP)

# Why PYTHON cannot make .venv (empty when it can); expanded only when .venv must be created.
PYTHON_PROBLEM = $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; v = sys.version.split()[0]; \
	print("" if sys.version_info >= (3, 11) else f"$(PYTHON) is {v}")' 2>&1 | tail -n1),none of python3, \
	python3.11, python3.12, python3.13 on PATH is one)

$(STAMP):
	@# $$(error) here stops make with exactly one line, and only when .venv has to be created.
	$(if $(wildcard $(PY)),,$(if $(strip $(PYTHON_PROBLEM)),$(error flanlab needs Python 3.11+ ($(strip \
	  $(PYTHON_PROBLEM))); install it or pass PYTHON=/path/to/python3.11)))
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { echo "make: '$(PYTHON) -m venv' failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: $(VENV) has Python < 3.11; remove it (rm -rf $(VENV)) and rerun" >&2; exit 1; }
	@echo "make: installing $(TORCH) and flanlab[$(EXTRAS)] into $(VENV) (log: $(VENV)/install.log)"
	@$(PIP) install $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) > $(VENV)/install.log 2>&1 || $(call PIP_FAIL,$(TORCH))
	@# The torch requirement again: an extra that asks for another torch is a conflict, not a swap.
	@$(PIP) install -e ".[$(EXTRAS)]" $(TORCH) >> $(VENV)/install.log 2>&1 || $(call PIP_FAIL,flanlab[$(EXTRAS)])
	@rm -f $(VENV)/.flanlab-installed-*
	@touch $@
	@echo "make: installed ($$($(PY) -c 'import torch; print("torch", torch.__version__)'))"

# The HTML report test renders in Debian's chromium; without it that test would only skip.
chromium: install
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  echo "make: installing Debian's chromium (apt-get$${SUDO:+ via sudo})"; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } > $(VENV)/apt.log 2>&1 \
	    || { echo "make: could not install chromium with apt-get: $$(tail -n1 $(VENV)/apt.log) (details: $(VENV)/apt.log)" >&2; exit 1; }; }
