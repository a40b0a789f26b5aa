# retcore: `make demo` runs the whole product on the demo data; `make test` runs the suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= results.duckdb
HOST   ?= 127.0.0.1
PORT   ?= 8501

.PHONY: venv demo pipeline dashboard test test-fast bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

pipeline: venv
	$(BIN)/retcore pipeline --demo --db $(DB)

demo: pipeline
	$(BIN)/retcore dashboard --db $(DB) --host $(HOST) --port $(PORT)

dashboard: venv
	$(BIN)/retcore dashboard --db $(DB) --host $(HOST) --port $(PORT)

# Test processes (pytest-xdist, one test file per process at a time): 2 on this project's 2-core
# machines, one intra-op thread each; TEST_WORKERS=0 runs the suite in one process with 2 threads.
TEST_WORKERS ?= 2

test: venv
	OMP_NUM_THREADS=$(if $(filter 0,$(TEST_WORKERS)),2,1) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: venv
	$(BIN)/python bench/train_step.py

clean:
	rm -rf $(VENV) results results.duckdb results.duckdb.wal data/demo data/demo-*
