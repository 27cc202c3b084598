# The two README commands: `make dev` runs the whole stack, `make test` runs every test (CI).
# The inner loop: `make unit` (lint + unit tests, no servers); `make e2e`, `make browser`: one tier.
.PHONY: dev dev-cluster test unit e2e browser lint fmt bootstrap bench bench-join bench-state-rpc bench-voice bench-eot bench-capacity bench-tokens bench-failover bench-report eval-understanding bench-recogniser

dev:
	bash scripts/bootstrap.sh
	.venv/bin/python -m devstack

test:
	bash scripts/test.sh

unit:
	bash scripts/test.sh unit

e2e:
	bash scripts/test.sh e2e

browser:
	bash scripts/test.sh browser

# LiveKit's distributed mode on this machine: Redis, NODES livekit-server nodes, WORKERS workers.
NODES ?= 2
WORKERS ?= 2
dev-cluster: bootstrap
	.venv/bin/python -m devstack.cluster --nodes $(NODES) --workers $(WORKERS)

lint:
	bash scripts/bootstrap.sh unit
	bash scripts/lint.sh

fmt:
	bash scripts/bootstrap.sh unit
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

# Cost per voice session of one agent worker (CPU core-s per session-minute, PSS per session),
# N = 1,2,3,4,6,8,... until turns fail, and the knee; ~10-15 min. docs/capacity.md
bench-capacity: bootstrap
	.venv/bin/python -m bench.capacity

bench-tokens: bootstrap
	.venv/bin/python -m bench.token_throughput

bench-failover: bootstrap
	.venv/bin/python -m bench.failover

# Paraphrases, near-misses and uncovered questions (bench/understanding): the stand-in, and a real
# endpoint too when OPENAI_API_KEY is set.
eval-understanding: bootstrap
	.venv/bin/python -m bench.understanding

bench-recogniser: bootstrap
	.venv/bin/python -m bench.recogniser

bench-report: bootstrap
	.venv/bin/python -m bench.report

bench: bench-join bench-state-rpc bench-voice bench-eot bench-capacity bench-tokens bench-failover bench-recogniser bench-report
