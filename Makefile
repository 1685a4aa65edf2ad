# make demo: the main job end to end on the embedded default (generated videos, CPU).
# make test: the test suite. Both install what they need on first use.
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE := 1
CORES ?= 2

.PHONY: setup browser demo test lint report clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	snakemake --cores $(CORES) all
	@echo "dataset written to dataset/ (card: dataset/README.md)"

test: setup browser
	pytest

# Headless Chromium for the test that renders the report in a real browser (Debian package).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "make: could not install chromium; the browser test will be skipped"

lint: setup
	ruff check .
	ruff format --check .
	snakefmt --check Snakefile rules/
	snakemake --lint

report: setup
	snakemake --report report.zip

clean:
	rm -rf results dataset logs .snakemake report.zip
