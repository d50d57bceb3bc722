# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv/, installs gyrodeblur, runs `gyrodeblur demo` (bundled data)
#   make test   creates .venv/ if needed, runs ruff and the tests (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/gyrodeblur: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,telemetry]'
	touch $@

demo: $(BIN)/gyrodeblur
	$(BIN)/gyrodeblur demo -o demo-output

test: $(BIN)/gyrodeblur
	$(BIN)/ruff check gyrodeblur tests bench
	$(BIN)/python -m pytest

bench: $(BIN)/gyrodeblur
	$(BIN)/python bench/kernels.py
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/deblur.py

clean:
	rm -rf $(VENV) demo-output
