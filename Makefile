# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   creates .venv/, installs gyrodeblur, runs the main job on bundled data
#   make test   creates .venv/ if needed, runs ruff and the tests (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := gyrodeblur/data/gyrovd_real

.PHONY: demo test bench clean

$(BIN)/gyrodeblur: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,telemetry]'
	touch $@

demo: $(BIN)/gyrodeblur
	$(BIN)/gyrodeblur kernels --gyro $(SAMPLE)/gyro.csv --camera $(SAMPLE)/camera.json \
		--frames-csv $(SAMPLE)/frames.csv --range 40:42 --size 540x960 --no-translation \
		-o demo-output/kernels.npz --plot demo-output
	@echo "kernel pictures: demo-output/kernels_*.png"

test: $(BIN)/gyrodeblur
	$(BIN)/ruff check gyrodeblur tests bench
	$(BIN)/python -m pytest

bench: $(BIN)/gyrodeblur
	$(BIN)/python bench/kernels.py

clean:
	rm -rf $(VENV) demo-output
