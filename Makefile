# The two README commands: `make dev` runs the whole stack, `make test` runs every test.
.PHONY: dev test lint fmt bootstrap bench

dev:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devstack

test:
	bash scripts/test.sh

lint: bootstrap
	bash scripts/lint.sh

fmt: bootstrap
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bootstrap:
	bash scripts/bootstrap.sh
