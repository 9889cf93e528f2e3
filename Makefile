# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
# The C++ library (cpp/) needs Debian's libhdf5-dev, installed here where apt-get and root allow;
# without it (or without cmake and a C++ compiler) its tests fail, saying what is missing, unless
# skipped on purpose: make test CALOFORGE_SKIP_CPP=1.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SYSTEM_PACKAGES := libhdf5-dev
CPP_BUILD ?= build/cpp
CALOFORGE_SKIP_CPP ?= 0

.PHONY: install demo test docs lint format clean cpp

$(STAMP): pyproject.toml
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { command -v apt-get >/dev/null && \
	  [ "$$(id -u)" = 0 ] && { apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; }; }; } || \
	  echo "note: could not install $(SYSTEM_PACKAGES); the C++ library will not build"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/caloforge demo

test: docs
	CALOFORGE_SKIP_CPP=$(CALOFORGE_SKIP_CPP) $(BIN)/pytest

# The site (guides, studies, model cards, API reference from the docstrings) into site/, offline;
# a warning (a broken link, an undocumented parameter) is an error.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# libcaloforge and its programs (caloforge-generate, caloforge-bench), against the venv's libtorch.
cpp: $(STAMP)
	@mkdir -p $(CPP_BUILD)
	@cmake -S cpp -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(BIN)/python -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  >$(CPP_BUILD).log 2>&1 || { cat $(CPP_BUILD).log; exit 1; }
	@cmake --build $(CPP_BUILD) -j 2 >>$(CPP_BUILD).log 2>&1 || { tail -40 $(CPP_BUILD).log; exit 1; }
	@echo "built $(CPP_BUILD)/caloforge-generate, caloforge-bench and libcaloforge.so"

clean:
	rm -rf $(VENV) build site .pytest_cache .ruff_cache
