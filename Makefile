# wahook: every entry point is here. `make help` lists the targets.
GO      ?= go
PKGS    ?= ./...
BIN     ?= bin
FUZZTIME ?= 60s

# Development defaults for `make run` (and only it), applied to WAHOOK_*
# variables not already set: `WAHOOK_AUTH_WHAPI_TOKENS=s make run` still
# authenticates Whapi.
RUN_DEFAULTS = WAHOOK_AUTH_DISABLED=true WAHOOK_NATS_URL= WAHOOK_DATA_DIR=./data \
	WAHOOK_HTTP_ADDR=127.0.0.1:8080 WAHOOK_ADMIN_ADDR=127.0.0.1:9090 WAHOOK_NATS_EMBEDDED_ADDR=127.0.0.1:4222 \
	WAHOOK_LOG_FORMAT=console WAHOOK_DERIVE=all

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: run
run: ## run the pipeline on an embedded NATS JetStream (no docker, no external server)
	@for kv in $(RUN_DEFAULTS); do env | grep -q "^$${kv%%=*}=" || export "$$kv"; done; \
	exec $(GO) run ./services/ingress

.PHONY: test
test: lint test-deployments ## every test, with the race detector
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

# The deployment files' tests are a module of their own (deployments/test):
# the Compose, Helm and Kubernetes modules they load stay out of wahook's
# go.mod. They run no goroutines of wahook's, so no race detector: it would
# only slow down compiling those modules. Not part of make test: with an
# empty build cache compiling them takes minutes (8 s once cached).
.PHONY: test-deploy
test-deploy: ## docker-compose.yml and the Helm chart, loaded and checked with Compose's and Helm's own Go packages
	cd deployments/test && $(GO) vet ./... && $(GO) test -count=1 -timeout 5m ./...

# A module of its own: Prometheus's rule and PromQL parsers stay out of
# wahook's. UPDATE=1 rewrites deployments/prometheus/metrics-used.txt.
.PHONY: test-deployments
test-deployments: ## parse the alert rules and dashboard with Prometheus's parsers; list the metrics they use
	cd deployments/check && $(GO) vet ./... && $(GO) test -count=1 ./... $(if $(UPDATE),-update)

# The state registries' race tests, run many times: a race that loses one run
# in a hundred shows up here, not as a red `make test` later.
STATE_RACE_COUNT ?= 20

# The console in headless Chromium (skips without /usr/bin/chromium).
.PHONY: test-console
test-console: ## the web console in a real browser (headless Chromium, chromedp)
	$(GO) test -count=1 -timeout 5m -v -run 'Console' ./test/console

.PHONY: console-screenshots
console-screenshots: ## regenerate docs/console/*.png from the browser test
	$(GO) test -count=1 -timeout 5m -run 'Console' ./test/console -console.screenshots=$(CURDIR)/docs/console

.PHONY: test-state-race
test-state-race: ## the state race tests, STATE_RACE_COUNT times each, with the race detector
	$(GO) test -race -count=$(STATE_RACE_COUNT) -timeout 60m -run 'Race' ./pkg/state/...

.PHONY: helm-rules
helm-rules: ## copy the alert rules into the Helm chart (Helm reads only files inside it)
	cp deployments/prometheus/rules.yml deployments/helm/wahook/files/rules.yml

.PHONY: upstream
upstream: ## reproduce known defects of dependencies (fails while they are there: test/upstream/README.md)
	$(GO) test -race -count=1 -tags upstream -v ./test/upstream/

.PHONY: test-repeat
test-repeat: ## make test until RUNS (20) runs pass in a row, two fresh clones at once, each the other's load
	test/repeat.sh $(or $(RUNS),20)

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: asyncapi-validate
asyncapi-validate: ## check schemas/asyncapi.yaml with the AsyncAPI CLI (npm; needs the npm registry)
	npx -y @asyncapi/cli validate schemas/asyncapi.yaml

.PHONY: examples-test
examples-test: ## run examples/ (Go and Node subscribers) against a running ingress on NATS and Kafka (npm ci needs the npm registry)
	cd examples/node-subscriber && npm ci --no-audit --no-fund
	$(GO) test -tags examples -count=1 -timeout 10m -v ./examples/

.PHONY: build
build: ## build every service into ./bin
	$(GO) build -o $(BIN)/ ./services/...

.PHONY: bench
bench: ## benchmarks (go test -bench) of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

FUZZ_PKGS ?= ./pkg/provider ./pkg/provider/whapi ./pkg/provider/zapi ./pkg/provider/waha ./pkg/provider/evolution ./pkg/provider/meta ./pkg/envelope ./pkg/ingress ./pkg/state
# FUZZFLAGS passes more go test flags, e.g. -parallel=1 to leave a core free.
FUZZFLAGS ?=

.PHONY: fuzz
fuzz: ## run every fuzzer (provider parsers, subject tokens, the whole HTTP handler) for FUZZTIME each
	@for p in $(FUZZ_PKGS); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$p || exit 1; \
	  done; \
	done

.PHONY: chaos
chaos: ## fault injection, long variant: broker and deriver killed under load, outcomes checked (CHAOS_DIR keeps logs)
	$(GO) test -race -count=1 -timeout 40m -run '^TestChaos' -v ./test/chaos -chaos.long $(if $(CHAOS_DIR),-chaos.dir=$(CHAOS_DIR))

.PHONY: clean
clean: ## remove build output and local data
	rm -rf $(BIN) ./data

.PHONY: bench-load
bench-load: ## load test: bare handlers, ingress, whole pipeline, two bodies, ratios (DURATION, CONNS, BROKER, PROFILE)
	services/loadgen/compare.sh $(or $(DURATION),10s)

.PHONY: bench-scale
bench-scale: ## derivation throughput with 1, 2, 4 derivers on NATS and Kafka; peak memory under a 60 s load (FILL, INSTANCES, BROKER)
	services/loadgen/scale.sh
