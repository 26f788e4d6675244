# Two commands for a new user: `make demo` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU-only machine gets the CPU build of torch (a wheel on disk here), not the CUDA one.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.1,<=2.14.1" || echo "torch==2.13.0")
# What headless Qt (napari under Xvfb) needs on Debian/Ubuntu.
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
	libxcb-xinerama0 libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 \
	libgl1 libegl1 libfontconfig1 libdbus-1-3

.PHONY: demo test lint system-deps bench evaluate clean

## demo: set up .venv, then napari with a sample and the IEM widget (display), or the CLI on sample images (no display)
demo: $(VENV)/.installed
	$(PY) -m napari_iem.demo --out demo-output

## test: install system libraries (as root), set up .venv, run the whole suite under Xvfb
test: system-deps $(VENV)/.installed
	$(VENV)/bin/pytest

## lint: ruff over the sources, tests and benchmarks
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi; \
	elif ! command -v Xvfb >/dev/null 2>&1; then \
	  echo "warning: Xvfb is missing and this is not root: install $(APT_PACKAGES)"; fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" -e ".[testing]"
	touch $@

## bench: engine speed table (docs/benchmarks.md)
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
