# bgclean: `make demo` runs the main job on the bundled sample; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    := out
DATA   ?= $(BGCLEAN_BENCH_DATA)

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so pip never resolves the multi-GB CUDA build on a CPU machine
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(VENV)/bin/bgclean samples/vtest_6s.mp4 -o $(OUT)/vtest_6s.clean.mp4 \
		--save-masks $(OUT)/vtest_6s.masks --contact-sheet $(OUT)/vtest_6s.sheet.png
	@echo "demo: cleaned video $(OUT)/vtest_6s.clean.mp4, before/after sheet $(OUT)/vtest_6s.sheet.png"

test: $(STAMP)
	$(PY) -m ruff check bgclean tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make bench DATA=DIR (the benchmark data folder: bench/README.md)"; exit 2; }
	$(PY) bench/speed.py --data $(DATA)
	$(PY) bench/segmentation.py --data $(DATA)
	$(PY) bench/superres.py --data $(DATA)
	$(PY) bench/video_fill.py --data $(DATA)
	$(PY) bench/inpaint.py --data $(DATA)
	$(PY) bench/hooks.py --data $(DATA)
	# bench/memory.py (vtest, all 795 frames) takes ~25 minutes on 2 cores: run it by hand

clean:
	rm -rf $(OUT) .pytest_cache
