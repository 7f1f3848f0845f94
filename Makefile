# amprenta-backup developer entry points. Every target bootstraps first (fast when up to date).
# Extra arguments: make test ARGS="-k catalog -x", make demo ARGS="--rows 20000 --keep",
# make bench (issue 17's benchmarks, one table; BENCH_ARGS="--size-mb 20 --rounds 1" is quick),
# one benchmark alone: make bench-one BENCH=bench_backup BENCH_ARGS="--size-mb 500 --double"
# (see bench/README.md).
SHELL := /bin/bash
ENV := source scripts/env.sh &&
ARGS ?=
BENCH_ARGS ?=
BENCH ?= bench_backup

.PHONY: bootstrap bootstrap-demo demo demo-s3 test test-unit test-distributed lint docs bench bench-one

bootstrap:
	@bash scripts/bootstrap.sh

# the demo needs only the system PostgreSQL, not the test majors 14/16/17/18
bootstrap-demo:
	@bash scripts/bootstrap.sh --no-pg-majors

demo: bootstrap-demo
	@$(ENV) python scripts/demo.py --storage local $(ARGS)

demo-s3: bootstrap-demo
	@$(ENV) python scripts/demo.py --storage s3 $(ARGS)

test: bootstrap
	@bash scripts/test.sh $(ARGS)

test-unit: bootstrap
	@$(ENV) python -m pytest -q -p no:cacheprovider tests/unit $(ARGS)

# the CeleryExecutor run alone (Redis, two Celery workers; docs/deployment.md)
test-distributed: bootstrap
	@$(ENV) python -m pytest -q -p no:cacheprovider tests/distributed $(ARGS)

lint: bootstrap
	@$(ENV) ruff check . && mypy

docs: bootstrap-demo
	@$(ENV) mkdocs build --strict --quiet && echo "docs: site/index.html"

# every issue-17 benchmark in turn (about 15 min on 2 quiet cores), one table of the ratios
# against their targets, bench/results/all.json
bench: bootstrap
	@$(ENV) python bench/bench_all.py $(BENCH_ARGS) $(ARGS)

bench-one: bootstrap
	@$(ENV) python bench/$(BENCH).py $(BENCH_ARGS) $(ARGS)
