# Two commands: `make run` starts the whole stack, `make test` runs the suite.
# Both create the virtualenv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test faults soak soak-test bench bench-scale histories lint clean lock

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[local,test]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m backorders.stack

test: $(STAMP)
	$(BIN)/python -m pytest

# Crashes and outages with real processes: slower, so kept out of `make test`.
faults: $(STAMP)
	$(BIN)/python -m pytest -m "faults and not soak" tests/faults

# The soak's scheduler and report on a 20-second run (about two minutes in all).
soak-test: $(STAMP)
	$(BIN)/python -m pytest -m soak tests/faults

# A bounded chaos soak on loopback: two APIs and three workers under a mixed load while
# a random worker, an API, PostgreSQL or Temporal is killed and restarted at random
# intervals; then the invariants, and the figures. Exits non-zero on a violation.
# Usage: make soak [SOAK_SECONDS=180] [SOAK_SEED=1] [SOAK_ARGS="--kinds worker,postgres"]
SOAK_SECONDS ?= 180
SOAK_SEED    ?= 1
soak: $(STAMP)
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED) $(SOAK_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# Memory and allocation time with 10,000 and 50,000 lines waiting (about 15 minutes).
bench-scale: $(STAMP)
	$(BIN)/python -m bench --only scale --scale 10000,50000

# Record line workflow histories for the replay tests (keep the old files: running
# workflows started on older code must still replay). Usage: make histories TAG=v2
histories: $(STAMP)
	@test -n "$(TAG)" || (echo "usage: make histories TAG=<version>"; exit 2)
	RECORD_HISTORIES=$(TAG) $(BIN)/python -m pytest -q tests/test_replay.py -k fresh

lint: $(STAMP)
	$(BIN)/python -m ruff check .

# Refresh the pinned set of transitive dependencies after changing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
