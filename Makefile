# Bellhop's front door. `make test` is what CI runs (see .ci/run).
# The tests need a PostgreSQL: TEST_DATABASE_URL or DATABASE_URL if set, else
# testcontainers (Docker), else a throwaway cluster from local binaries.

GO ?= go

.PHONY: test test-clean test-go test-js test-e2e lint generate build demo bench bench-smoke bench-peer js-pack

# `make test` is the README's test command: Go and JS unit tests.
test: test-go test-js

# test-clean is `make test`, failing if the run left a process or a temp file.
test-clean:
	scripts/check-clean.sh $(MAKE) test

test-go:
	$(GO) test -count=1 -race ./...

# npm ci builds js/dist through the package's `prepare` script; lint:package
# checks that build as npm would publish it (publint, Are the Types Wrong?),
# and the tests pack, install and bundle it.
test-js:
	cd js && npm ci --no-audit --no-fund && npm run typecheck && npm run lint:package && npm test

# js/bellhop-client-<version>.tgz: @bellhop/client as npm would publish it,
# to install from a file until it is on the registry (js/README.md).
js-pack:
	cd js && npm ci --no-audit --no-fund && npm pack --ignore-scripts

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: the files above need formatting" && exit 1)

build:
	$(GO) build -o bin/relay ./cmd/relay

# The demo's browser bundle, relay/demo/static/inbox.js, is built from js/
# and committed (the relay embeds it). CI runs this and fails when the
# committed file differs: rebuild and commit it with any change under js/.
generate:
	cd js && npm ci --no-audit --no-fund && npm run build:demo

# Benchmarks: cmd/bench builds the relay into a temp folder, runs it as a
# child process on a fresh schema and drives it over HTTP/SSE. See
# docs/benchmarks.md.
bench:
	$(GO) run ./cmd/bench

bench-smoke:
	$(GO) run ./cmd/bench -smoke

# Bellhop beside its peer, Centrifugo's PostgreSQL outbox consumer: one
# probe, alternating runs (docs/benchmarks.md, "Beside Centrifugo"). Needs a
# Centrifugo binary: `GOBIN=/tmp/cfbin go install
# github.com/centrifugal/centrifugo/v6@v6.9.1`, then
# `make bench-peer CENTRIFUGO=/tmp/cfbin/centrifugo`.
bench-peer:
	$(GO) run ./cmd/peerbench -centrifugo '$(CENTRIFUGO)'

# The demo's database: DATABASE_URL, else TEST_DATABASE_URL, else Docker
# (testcontainers-go), else local binaries. cmd/demo finds it and runs
# `relay demo` on it; the relay binary itself does not link Docker.
# DEMO_ADDR is where it listens (default 127.0.0.1:8080: loopback, as the
# page signs in whoever opens it). Built, then run: `go run` exits 1 when
# interrupted, so make would call a ^C an error.
demo:
	$(GO) build -o bin/demo ./cmd/demo
	bin/demo $(if $(DEMO_ADDR),-addr '$(DEMO_ADDR)')

test-e2e:
	bash e2e/run.sh

# Soak: mixed load with faults (listener kills, relay SIGKILL/restart,
# graceful restarts) for SOAK_DURATION; fails on any loss or duplicate.
SOAK_DURATION ?= 10m
.PHONY: soak
soak:
	$(GO) run ./cmd/soak -duration $(SOAK_DURATION)
