# Two self-sufficient entry points on a fresh machine:
#   make test   create .venv if missing, install the project into it, run the tests
#   make test-fast  the same without the slow tests (pytest -m 'not slow'): the inner loop while editing
#   make demo   same set-up, then deblur the shipped example with the shipped model
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-fast demo lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) setup.py requirements.txt
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) *.egg-info
