# Two commands for a fresh machine with Python >= 3.11 and make:
#   make demo   -- build the demo outputs (model figures) from built-in data
#   make test   -- run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_output

.PHONY: demo test lint environment clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[all,test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/asymflux demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

environment: $(STAMP)
	$(PY) tools/make_environment.py > environment.yml

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
