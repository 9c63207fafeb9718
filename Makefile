# Two commands for a fresh machine with Python >= 3.11 and make:
#   make demo   -- build the demo data and model figures, then serve the dashboards
#   make test   -- run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_output
PORT ?= 5006

.PHONY: demo test lab lint environment clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[all,test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/asymflux demo --out $(DEMO_OUT)
	@echo ""
	@echo "Serving the dashboards (Ctrl-C to stop):"
	@echo "  model explorer:  http://localhost:$(PORT)/model_explorer"
	@echo "  cohort browser:  http://localhost:$(PORT)/cohort"
	@echo "  live page:       http://localhost:$(PORT)/live"
	$(VENV)/bin/panel serve dashboards/model_explorer.py dashboards/cohort.py dashboards/live.py --port $(PORT) \
		--address 127.0.0.1 --allow-websocket-origin=localhost:$(PORT) --allow-websocket-origin=127.0.0.1:$(PORT)

# tools/prereqs.py: as root with apt-get, installs the Debian packages the GUI/browser tests need
# (tools/install-system-deps.sh; ASYMFLUX_NO_APT=1 never does); otherwise says which tests will
# not run and how to enable them. Those tests then skip (fail in CI).
test: $(STAMP)
	@$(PY) tools/prereqs.py
	$(PY) -m pytest

# The notebooks in JupyterLab (paired .py/.ipynb through jupytext); LAB_PORT to change the port.
LAB_PORT ?= 8888
LAB_AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=$(LAB_PORT) $(LAB_AS_ROOT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

environment: $(STAMP)
	$(PY) tools/make_environment.py > environment.yml

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
