# Two entry points for a fresh machine: `make run` and `make test`. Everything else is a step they call.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install broker browser up down status send bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

broker: install          ## resolve the Kafka broker jars from Maven Central (cached)
	$(BIN)/attrib stack fetch

up: broker               ## start the local stack (Kafka broker, topics, ClickHouse migrations)
	$(BIN)/attrib stack up

down:
	$(BIN)/attrib stack down

status:
	$(BIN)/attrib stack status

run: broker              ## local stack + pipeline with visible results
	@$(BIN)/attrib run

browser:                 ## Debian's chromium for the inspector's headless browser test (installed when root)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } \
	  || echo "chromium unavailable: the inspector browser test will skip (apt-get install -y chromium)"

test: broker browser lint ## lint, then the whole suite against a real broker the fixtures start (and stop)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install            ## layer contracts (import-linter), ruff and mypy over the package
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

send: install            ## more signed sample traffic to a running `make run`
	$(BIN)/attrib send --count 200 --duplicates 0.05 --out-of-order 0.1

bench: broker            ## every benchmark, one after another (each prints its figures; minutes, not for CI)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: down
	rm -rf var
