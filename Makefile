# The README's two commands: `make demo` and `make test`. Both install what
# is missing first: Debian packages (apt-get), then Go modules.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
# sip-tester is sipp; iproute2 makes the network namespaces of the torture
# test; curl is for the demo; gcc for `go test -race` and cgo; PortAudio for
# the sound card, with JACK's dummy backend as the headless one in tests.
DEB_PACKAGES := sip-tester iproute2 curl gcc libc6-dev ca-certificates \
	linphone-cli baresip-core kamailio tshark \
	portaudio19-dev jackd2 libasound2-plugins pkg-config
# The sound card needs cgo and PortAudio: built with this tag.
TAGS := portaudio

.PHONY: all deps build test demo vet clean bench

all: build

deps:
	@command -v $(GO) >/dev/null || { \
	  echo "== installing Go from Debian (it fetches the toolchain go.mod asks for)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-go; }
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "== installing Debian packages:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
	$(GO) mod download

build: deps
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...
	$(GO) vet -tags $(TAGS) ./...

test: deps vet
	$(GO) test -race -tags $(TAGS) -count=1 -timeout 20m ./...

# The full benchmark against Kamailio (bench/, results in docs/BENCHMARKS.md):
# minutes of load on loopback. `make test` runs only its smoke version.
bench: deps
	$(GO) run ./bench -out bench-results.json
	$(GO) test -run '^$$' -bench . -benchmem ./media/ ./sdp/ ./registrar/... | tee bench-go.txt

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
