# make demo: the main job end to end on the embedded default (generated videos, CPU).
# make test: the test suite (CI's), on every core. Both install what they need on first use.
# make test-fast: the tests that need no Snakemake run (a few minutes), for the development loop.
# make slurm-profile: install profiles/slurm as ~/.config/snakemake/slurm (README: Running on SLURM).
# make slurm-start / slurm-stop: a one-node SLURM on this machine, as root (for trying the profile).
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HF_HUB_OFFLINE := 1
CORES ?= 2

.PHONY: setup browser demo test test-fast lint report clean slurm-profile slurm-start slurm-stop

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# `senorita warm` imports torch, transformers and diffusers once and forks each job's command from
# that process (README: Running on one machine); the jobs and their outputs are the same. The
# greedy scheduler picks the next jobs without starting an ILP solver each time (18 s less CPU).
demo: setup
	senorita warm -- snakemake --cores $(CORES) --scheduler greedy all
	@echo "dataset written to dataset/ (card: dataset/README.md)"

# Every test on every core, a file per worker at a time (--dist loadfile: a module's fixtures, the
# SLURM cluster's among them, are built on one worker), in the order tests/conftest.py gives them
# (--no-loadscope-reorder: xdist would otherwise hand out the files with the most tests first); the
# demo run is made once and shared.
test: setup browser
	pytest -n $(CORES) --dist loadfile --no-loadscope-reorder

# worksteal hands each xdist worker a contiguous half of the tests and moves work only when one
# runs dry, so a module's fixtures are mostly built on one worker: the warm worker's server (10 s)
# once, where the default scheduler's interleaved batches built it on both.
test-fast: setup
	pytest -m "not e2e" -n $(CORES) --dist worksteal

# Headless Chromium for the test that renders the report in a real browser (Debian package).
# A failed install stops here: the browser test would otherwise skip (and under CI=true fail).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "make: could not install chromium (apt-get install chromium)" >&2; exit 1; }

lint: setup
	ruff check .
	ruff format --check .
	snakefmt --check Snakefile rules/
	snakemake --lint

report: setup
	snakemake --report report.zip

# A link, not a copy: the installed profile follows this clone. An existing profile of the same
# name that is not our link is left alone.
SNAKEMAKE_PROFILES := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
slurm-profile:
	@mkdir -p $(SNAKEMAKE_PROFILES)
	@if [ -e $(SNAKEMAKE_PROFILES)/slurm ] && [ ! -L $(SNAKEMAKE_PROFILES)/slurm ]; then \
	  echo "$(SNAKEMAKE_PROFILES)/slurm exists and is not a link to this clone; move it away" >&2; exit 1; fi
	ln -sfn $(CURDIR)/profiles/slurm $(SNAKEMAKE_PROFILES)/slurm
	@echo "installed: snakemake --profile slurm all"

slurm-start:
	bash scripts/slurm/start.sh

slurm-stop:
	bash scripts/slurm/stop.sh

clean:
	rm -rf results dataset logs .snakemake report.zip
