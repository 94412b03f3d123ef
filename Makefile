# Two commands set everything up: `make demo` (the main job on the embedded sample data) and
# `make test` (the whole test suite). Both create or reuse the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test install clean

install: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch pulled in by the project would fetch
# the newest CUDA build (several GB).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/fusionkit plugins
	$(BIN)/fusionkit train --student se_strip --teacher ae
	$(BIN)/fusionkit bench --json runs/bench.json --markdown runs/bench.md

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs
