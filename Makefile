# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The compilers of the graft languages beyond C and Zig (which come with the
# ziglang package): Rust for wasm32 from Debian, AssemblyScript from npm into
# .tools/ (see src/vino/sdk/toolchains.py); installed once, when missing.
TOOLS  := .tools/.checked

.PHONY: demo test lint bench clean toolchains ubsan asan memcheck

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vino demo

toolchains: $(STAMP)
	$(BIN)/python -m vino.sdk.toolchains install

$(TOOLS): $(STAMP) src/vino/sdk/toolchains.py
	$(BIN)/python -m vino.sdk.toolchains install
	mkdir -p .tools && touch $(TOOLS)

test: $(STAMP) $(TOOLS)
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow"

# The tests of the native C against builds with undefined-behaviour and address checks,
# and under valgrind's memcheck (src/vino/testing/checked.py; libasan8 and valgrind
# from Debian).
ubsan: $(STAMP)
	$(BIN)/python -m vino.testing.checked ubsan

asan: $(STAMP)
	$(BIN)/python -m vino.testing.checked asan

memcheck: $(STAMP)
	$(BIN)/python -m vino.testing.checked memcheck

bench: $(STAMP)
	$(BIN)/vino bench

clean:
	rm -rf $(VENV) .tools build *.egg-info
