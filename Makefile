# The two README commands: `make dev` runs the whole stack, `make test` runs every test.
.PHONY: dev dev-cluster test lint fmt bootstrap bench bench-join bench-state-rpc bench-voice bench-eot bench-capacity bench-tokens bench-report

dev:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devstack

test:
	bash scripts/test.sh

# LiveKit's distributed mode on this machine: Redis, NODES livekit-server nodes, WORKERS workers.
NODES ?= 2
WORKERS ?= 2
dev-cluster: bootstrap
	.venv/bin/python -m devstack.cluster --nodes $(NODES) --workers $(WORKERS)

lint: bootstrap
	bash scripts/lint.sh

fmt: bootstrap
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bootstrap:
	bash scripts/bootstrap.sh

# Benchmarks: one command each (results and plots in bench/results/), `make bench` runs them all.
bench-join: bootstrap
	.venv/bin/python -m bench.join_ready

bench-state-rpc: bootstrap
	.venv/bin/python -m bench.state_rpc

bench-voice: bootstrap
	.venv/bin/python -m bench.voice_turn

bench-eot: bootstrap
	.venv/bin/python -m bench.eot_sweep

bench-capacity: bootstrap
	.venv/bin/python -m bench.capacity

bench-tokens: bootstrap
	.venv/bin/python -m bench.token_throughput

bench-report: bootstrap
	.venv/bin/python -m bench.report

bench: bench-join bench-state-rpc bench-voice bench-eot bench-capacity bench-tokens bench-report
