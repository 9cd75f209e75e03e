# batchai: the two commands a new machine needs are `make demo` and `make test`.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-azurite test test-deps test-fast lint format completions docs bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,mount,portal]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./examples/demo.sh

demo-azurite: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" ./examples/azurite/run.sh

# What the tests need beyond pip (Debian packages, Azurite): installed once, checked in well under a second after.
test-deps:
	@./scripts/test-deps.sh

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .

completions: $(STAMP)
	$(BIN)/python scripts/generate.py completions

docs: $(STAMP)
	$(BIN)/python scripts/generate.py readme

bench: $(STAMP)
	$(BIN)/python bench/bench_startup.py

# batchai upload-batch vs az vs a raw PUT ceiling on Azurite; installs azure-cli into .bench/ once.
.PHONY: bench-upload
bench-upload: $(STAMP)
	$(BIN)/python bench/bench_upload.py

# batchai job file stream: line latency (p50/p99) on a local folder and Azurite Blob, against az's 1 s poll.
# The portal: job list server time with 10,000 jobs, log viewer latency next to `job file stream`.
.PHONY: bench-portal
bench-portal: $(STAMP)
	$(BIN)/python bench/bench_portal.py

.PHONY: bench-stream
bench-stream: $(STAMP)
	$(BIN)/python bench/bench_stream.py

# Submit-to-running p50/p99 over 20 jobs: local (goal < 0.3 s), and slurm next to a bare sbatch --wrap
# on a private Slurm cluster (goal within 1.5x); BENCH_SUBMIT_ARGS="--jobs 5" to shorten it.
.PHONY: bench-submit
bench-submit: $(STAMP) test-deps
	$(BIN)/python bench/bench_submit.py $(BENCH_SUBMIT_ARGS)

# The reliability suite's long run: 50 jobs x 1 MB/s for a minute under 4 CLI readers, 10,000 fuzzed
# inputs, the leak test, the faults (SIGKILLs, Azurite outages, full disks, slurmd killed); prints one table
# (SOAK_JOBS, SOAK_SECONDS, SOAK_RATE, SOAK_READERS, SOAK_KILLS, SOAK_OUTAGE, SOAK_DISK_TRIES, SOAK_SLURMD scale it).
soak: $(STAMP) test-deps
	$(BIN)/python -m tests.hardening.soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist

# Mounted volumes vs staged copies on Azurite: job create -> first read, bytes fetched, read and write throughput.
.PHONY: bench-mount
bench-mount: $(STAMP)
	$(BIN)/python bench/bench_mount.py
