# Thin aliases of the commands documented in README.md.
GO      ?= go
STATE   ?= .local

# Every Go file of the repository except the build contexts and the local
# runtime's state.
GOFILES  = $(shell find . -name '*.go' -not -path './build/*' -not -path './.local/*')

# A bare `make` lists the targets rather than starting the whole stack (make
# run binds 127.0.0.1:8080 and :8000 and builds every function); the
# commands to type are `make run` and `make test` (README.md).
.DEFAULT_GOAL := help

# Every go command of this file builds static and path-independent, exactly
# as faaslocal.GoBuild builds the local runtime's programs and make buildcheck
# builds every function's context: one build cache then serves lint, the
# suites, the tools run with go run (generate, chaos, buildcheck, ...), the
# runtime's binaries, buildcheck and a fresh clone of the repository. Only
# make unit turns cgo back on, because -race needs it (a second, race-detector
# build of every package, which no other target shares).
export CGO_ENABLED = 0
export GOFLAGS += -trimpath

.PHONY: help api-docs services run test lint fmt unit integration broker-restart-test replacement-test buildcheck fuzz chaos chaos-short generate bench bench-smoke clean jaeger jaeger-build

## help: list every target with what it does (each target's block of ##
## comments in this file; its first line names the target).
help:
	@echo 'make run starts the shop locally; make test runs every test (README.md). Every target:'
	@awk '/^## / { line = substr($$0, 4); if (prev ~ /^## /) printf "    %s\n", line; else printf "\n  %s\n", line } { prev = $$0 }' $(firstword $(MAKEFILE_LIST))

## services: start PostgreSQL, Redis and RabbitMQ on 127.0.0.1 when they are
## not running, with the PostgreSQL authentication the shop needs (trust for
## postgres from 127.0.0.1); .ci/run does the same.
services:
	bash dev/services.sh

# Jaeger v2 (2.13.0) is built from the Go module proxy, where its module
# carries the v1 line's tag of the same release.
JAEGER_MODULE  = github.com/jaegertracing/jaeger
JAEGER_VERSION ?= v1.76.0
JAEGER_BIN     = $(abspath $(STATE))/bin/jaeger

## run: build every function and connector, start the local OpenFaaS runtime
## (gateway 127.0.0.1:8080, edge 127.0.0.1:8000) and seed the development data;
## it first names any service that does not answer (make services starts them).
## faas-local is built, then run in the recipe's place (exec), rather than
## with go run: go run exits 1 whenever it is interrupted, so Ctrl-C would end
## make run with "Error 1" although faas-local stopped cleanly.
run:
	$(GO) build -o $(STATE)/bin/faas-local ./cmd/faas-local
	exec $(STATE)/bin/faas-local -state $(STATE)

## api-docs: vendor the API reference page's assets (the npm package
## swagger-ui-dist, version pinned in internal/apidocs) into
## functions/api-docs/assets with npm pack (dev/vendordocs, dev/docassets); the
## api-docs function embeds them, so run it before faas-cli build (make run
## does it when they are missing).
## Kong (and the local edge) route /docs and /openapi.yaml to api-docs.
api-docs:
	$(GO) run ./dev/vendordocs

## test: lint, every test (against the real PostgreSQL, Redis and RabbitMQ;
## the unit packages with the race detector), a short fuzz run and, last, the
## short chaos run beside the build check of every function of stack.yml and
## stack.ce.yml. The first stage runs one target at a time, in this order,
## under its own -j1, so that make -j or MAKEFLAGS=-j... cannot run them side
## by side: broker-restart-test restarts the machine's RabbitMQ and
## replacement-test counts every answer, so each must run alone
## (dev/deploycheck TestMakeTestRunsItsFirstStageInOrder). No other test runs
## during the second: chaos restarts only its own PostgreSQL cluster and
## RabbitMQ node, and buildcheck touches no service, so the build check's
## compiling fills the minutes chaos spends waiting (for its RabbitMQ node,
## its customers, the shop to settle).
test:
	$(MAKE) -j1 lint unit integration broker-restart-test replacement-test fuzz
	$(MAKE) -j2 --output-sync=target chaos-short buildcheck bench-smoke

## lint: gofmt, imports in three groups (stdlib, third party, the shop), vet,
## staticcheck and the layer rules of docs/architecture.md (each also reads the
## files behind the brokerrestart build tag), and no stale generated file.
lint:
	@out="$$(gofmt -l $(GOFILES))"; if [ -n "$$out" ]; then echo "gofmt would change (make fmt):"; echo "$$out"; exit 1; fi
	@out="$$($(GO) run ./dev/importgroups $(GOFILES))" || { echo "imports not in three groups (make fmt):"; echo "$$out"; exit 1; }
	$(GO) vet -tags brokerrestart ./...
	$(GO) tool staticcheck -tags brokerrestart ./...
	$(GO) run ./dev/layercheck -tags brokerrestart
	$(GO) run ./cmd/generate -check

## fmt: gofmt and regroup the imports of every Go file, listing the files it
## changes (re-run it after a rebase instead of resolving import blocks by hand).
fmt:
	@gofmt -l -w $(GOFILES)
	@$(GO) run ./dev/importgroups -w $(GOFILES)

## unit: the tests of every package outside tests/ (whose suites drive the
## whole local stack), with the race detector; then, without it, the tests
## that count allocations (the race detector adds its own, so they are built
## only without it, //go:build !race, or check only then, !raceEnabled).
## dev/deploycheck fails when one is missing from the second line.
unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '^github.com/shopfaas/shop/tests/')
	$(GO) test -count=1 -run '^(TestACountAllocatesLittle|TestASagaCallAllocatesLittle|TestWarmReadAllocations)$$' ./internal/ratelimit ./internal/orders/ordersgw ./dev/faaslocal/edge

## integration: the integration suite through the local runtime and the bench
## package's tests (without -race: they measure and drive separate processes);
## then TestEveryListedAnswerWasSeen: every status and problem code
## api/openapi.yaml lists was the answer of an exchange of the integration or
## security suite (each records what it saw into SHOP_CONTRACT_SEEN, a fresh
## folder), or is excused as fault-only (dev/contract, FaultOnly).
integration: SHELL := bash
integration: .SHELLFLAGS := -o pipefail -c
integration:
	seen="$$(mktemp -d)" && trap 'rm -rf "$$seen"' EXIT && \
	SHOP_CONTRACT_SEEN="$$seen" $(GO) test -count=1 -timeout 15m ./tests/... && \
	SHOP_CONTRACT_SEEN="$$seen" $(GO) test -count=1 -v -run '^TestEveryListedAnswerWasSeen$$' ./dev/contract | $(call passed,TestEveryListedAnswerWasSeen)

# passed(name) passes go test -v's output through and fails unless it says
# the test name passed: go test exits 0 when -run matches no test ("no tests
# to run", after a rename or when a build tag leaves the file out) and when
# the test skipped. The targets that use it run bash with pipefail, so a
# failing go test still fails them.
passed = awk -v name='$(1)' '{ print; fflush() } $$1 == "---" && $$2 == "PASS:" && $$3 == name { ok = 1 } \
	END { if (!ok) { print "FAIL: " name " did not run and pass"; exit 1 } }'

broker-restart-test replacement-test: SHELL := bash
broker-restart-test replacement-test: .SHELLFLAGS := -o pipefail -c

## broker-restart-test: restarts the machine's RabbitMQ in the middle of a
## burst of orders, so it runs alone, after the parallel suites.
broker-restart-test:
	$(GO) test -count=1 -v -tags brokerrestart -run '^TestEventsSurviveRabbitMQRestart$$' ./tests/integration | $(call passed,TestEventsSurviveRabbitMQRestart)

## replacement-test: steady calls during a scale-down, a redeploy and a SIGTERM
## must all answer 2xx; it counts every answer, so it runs alone.
replacement-test:
	SHOP_ALONE=1 $(GO) test -count=1 -v -run '^TestReplacementAnswersOnly2xx$$' ./dev/faaslocal | $(call passed,TestReplacementAnswersOnly2xx)

## chaos: the long chaos run (README, "Chaos"): the whole local stack against a
## private PostgreSQL cluster and RabbitMQ node, processes SIGKILLed, both
## services restarted, then every invariant. Flags: CHAOS_FLAGS="-duration 5m".
chaos:
	$(GO) run ./cmd/chaos $(CHAOS_FLAGS)

## chaos-short: the CI form of chaos (30 s of load; about 4 minutes on 2 loaded cores).
chaos-short:
	$(GO) run ./cmd/chaos -short

## fuzz: a short run of every fuzz test (their seeds, in testdata/fuzz, also
## run in make unit); FUZZTIME each, one package at a time (go test -fuzz
## takes one target per run). FUZZTIME is a count of executions, not a
## duration: with a duration, Go 1.26's fuzz coordinator can fail a target with
## a bare "context deadline exceeded" when the deadline meets a worker that a
## loaded machine has starved (golang/go#75804, fixed in Go 1.27; seen here in
## FuzzValidKey). A count has no deadline to race.
FUZZTIME ?= 10000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBytes$$' -fuzztime $(FUZZTIME) ./internal/fnhttp
	$(GO) test -run '^$$' -fuzz '^FuzzCheckRequestText$$' -fuzztime $(FUZZTIME) ./internal/fnhttp
	$(GO) test -run '^$$' -fuzz '^FuzzParseIfMatch$$' -fuzztime $(FUZZTIME) ./internal/fnhttp
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME) ./internal/search
	$(GO) test -run '^$$' -fuzz '^FuzzValidKey$$' -fuzztime $(FUZZTIME) ./internal/orders
	$(GO) test -run '^$$' -fuzz '^FuzzParseCursor$$' -fuzztime $(FUZZTIME) ./internal/orders
	$(GO) test -run '^$$' -fuzz '^FuzzParseTimelineCursor$$' -fuzztime $(FUZZTIME) ./internal/orders
	$(GO) test -run '^$$' -fuzz '^FuzzReadDelivery$$' -fuzztime $(FUZZTIME) ./internal/inbox
	$(GO) test -run '^$$' -fuzz '^FuzzEventsRead$$' -fuzztime $(FUZZTIME) ./internal/inbox
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/events
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/schedule
	$(GO) test -run '^$$' -fuzz '^FuzzASCIIAddress$$' -fuzztime $(FUZZTIME) ./internal/notifications/smtpmail
	$(GO) test -run '^$$' -fuzz '^FuzzMailbox$$' -fuzztime $(FUZZTIME) ./internal/notifications/smtpmail
	$(GO) test -run '^$$' -fuzz '^FuzzMaskEmail$$' -fuzztime $(FUZZTIME) ./internal/notifications

## buildcheck: build every function of stack.yml and stack.ce.yml as faas-cli
## build --shrinkwrap and the template's Dockerfile would (gofmt gate, vet,
## tests, static build), without a container engine; the template's starter
## handler and the connectors' build stages with stack.yml only.
buildcheck:
	$(GO) run ./cmd/buildcheck -stack stack.yml
	$(GO) run ./cmd/buildcheck -stack stack.ce.yml -starter=false -connectors=false

## generate: write every generated file (the bundled faasd-CE stack
## stack.ce.yml, gateway/kong.ce.yml, monitoring/prometheus.ce.yml and
## bundles/<service>/, and
## cmd/shop-functions/registry_gen.go); make lint checks they are current.
generate:
	$(GO) run ./cmd/generate

## bench: speed and memory figures of the local stack, each with its ratio to a
## baseline measured in the same run (see docs/benchmarks.md).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 6m ./tests/bench

## bench-smoke: make bench's synchronous checkout scenario alone, for 300 ms,
## in make test: its set-up (every function it starts, the catalog, stock set
## through set-stock) and its checks (no 5xx, no oversell) must hold, or make
## bench is broken. Its figures are not worth reading; it fails when the
## scenario did not run.
bench-smoke: SHELL := bash
bench-smoke: .SHELLFLAGS := -o pipefail -c
bench-smoke:
	BENCH_DURATION=300ms $(GO) test -count=1 -run '^$$' -bench '^BenchmarkShop/create-order$$' -benchtime 1x -timeout 6m ./tests/bench \
		| awk '{ print; fflush() } /^BenchmarkShop\/create-order/ { ok = 1 } END { if (!ok) { print "FAIL: BenchmarkShop/create-order did not run"; exit 1 } }'

## jaeger: build Jaeger v2 once (jaeger-build) and run it in the foreground
## with monitoring/jaeger/local.yaml: OTLP on 127.0.0.1:4318 (HTTP) and 4317
## (gRPC), UI and API on 127.0.0.1:16686, traces in memory. Point the local
## runtime at it with `go run ./cmd/faas-local -otlp http://127.0.0.1:4318`.
jaeger: $(JAEGER_BIN)
	$(JAEGER_BIN) --config monitoring/jaeger/local.yaml

## jaeger-build: build Jaeger from the module proxy into $(STATE)/bin/jaeger
## through a throw-away tools module in $(STATE)/jaeger-build (the shop's own
## go.mod stays free of Jaeger's dependencies). About 7 minutes the first time.
jaeger-build $(JAEGER_BIN):
	@mkdir -p $(abspath $(STATE))/jaeger-build $(abspath $(STATE))/bin
	cd $(abspath $(STATE))/jaeger-build && { [ -f go.mod ] || $(GO) mod init jaeger-build; } && \
		$(GO) get -tool $(JAEGER_MODULE)/cmd/jaeger@$(JAEGER_VERSION) && \
		$(GO) build -o $(JAEGER_BIN) $(JAEGER_MODULE)/cmd/jaeger

## clean: remove the build contexts (build/) and the binaries in .local/bin;
## the secrets and the async journal in .local stay (STATE=.local).
clean:
	rm -rf build $(STATE)/bin
