# Parley's two entry points on a fresh Debian machine (Swift 6 toolchain on PATH):
#   make demo   start RabbitMQ and PostgreSQL locally and run the demo
#   make test   start RabbitMQ and PostgreSQL locally and run every test against them
#   make soak   the convergence test for many seeds, chaos on (docs/testing.md)
SHELL := /bin/bash
LOCAL := infra/local/parley-local
LOCAL_DIR ?= /var/tmp/parley-local
WITH_ENV = set -a && . $(LOCAL_DIR)/parley.env && set +a &&

.PHONY: test soak demo infra infra-down build bench bench-mapping bench-link test-tools dataflows format format-check

infra:
	@PARLEY_LOCAL_DIR=$(LOCAL_DIR) $(LOCAL) up

# The envelope's JSON-Schema check runs Python's jsonschema; the PowerOffice Go conformance
# check also reads the OpenAPI document with PyYAML. The deployment test validates
# docker-compose.yml with Debian's docker-compose (1.29).
test-tools:
	@python3 -c 'import jsonschema, yaml' 2>/dev/null || python3 -m pip install -q jsonschema pyyaml 2>/dev/null \
	  || (apt-get install -y -qq python3-jsonschema python3-yaml >/dev/null 2>&1 || sudo apt-get install -y -qq python3-jsonschema python3-yaml)
	@command -v docker-compose >/dev/null 2>&1 || apt-get install -y -qq docker-compose >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq docker-compose >/dev/null 2>&1) \
	  || (sudo apt-get update -qq && sudo apt-get install -y -qq docker-compose)

infra-down:
	@PARLEY_LOCAL_DIR=$(LOCAL_DIR) $(LOCAL) down

build:
	swift build

# Regenerate docs/dataflows/*.rst from the mapping tables (a test fails while they are stale).
dataflows:
	swift run parley dataflows

# The layout of every Swift file is swift-format's, with .swift-format (the toolchain's
# `swift format`; layout only, no lint rules). `make format` applies it; `make test` checks it.
SWIFT_SOURCES = Package.swift Services Shared Tests
format:
	swift format format --in-place --parallel --recursive $(SWIFT_SOURCES)

format-check:
	@swift format lint --strict --parallel --recursive $(SWIFT_SOURCES) \
	  || (echo "not formatted: run 'make format' (swift-format, .swift-format)"; exit 1)

test: infra test-tools format-check
	$(WITH_ENV) swift test

# The convergence test (docs/testing.md) for many seeds: by default 20 seeds with chaos on (each
# service SIGKILLed once, the private broker and database restarted; SOAK_CHAOS=0 without, both
# for each seed twice). Prints each seed's outcome and `N passed, N failed`; the full report,
# with each failing seed's operations, findings and logs directory, is in $(SOAK_LOG).
SOAK_SEEDS ?= 1-20
SOAK_CHAOS ?= 1
SOAK_OPS ?= 60
SOAK_LOG ?= $(LOCAL_DIR)/soak.log
soak: infra
	swift build --build-tests
	@infra/local/parley-private up
	@$(WITH_ENV) PARLEY_CONVERGENCE_SEEDS='$(SOAK_SEEDS)' PARLEY_CONVERGENCE_CHAOS='$(SOAK_CHAOS)' PARLEY_CONVERGENCE_OPS='$(SOAK_OPS)' \
	  swift test --skip-build --filter Convergence > $(SOAK_LOG) 2>&1; status=$$?; \
	  grep -E '^(convergence|  replay|  logs)' $(SOAK_LOG); echo "full report: $(SOAK_LOG)"; \
	  infra/local/parley-private down; exit $$status

# The whole system with demo data: the three simulators (seeded), the three adapters, the mapping
# and link services, then `parley top`; Ctrl-C stops everything it started (infra/local/parley-stack).
demo: infra
	swift build
	$(WITH_ENV) infra/local/parley-stack run

bench: infra
	swift build -c release --product parley-bench
	$(WITH_ENV) .build/release/parley-bench amqp

# The mapping engine's conversions per second per core (no broker or database); see BENCHMARKS.md.
bench-mapping:
	swift build -c release --product parley-bench
	.build/release/parley-bench mapping --repository .

# The link service's canonical changes per second on the local PostgreSQL and RabbitMQ (scratch
# database and vhost, dropped afterwards), against pgbench writing the same rows; see BENCHMARKS.md.
bench-link: infra
	swift build -c release --product parley-bench
	$(WITH_ENV) .build/release/parley-bench link --repository .
