# gingham's entry points. Run as root on Debian: the lab and the kernel tests need namespaces.
CARGO ?= cargo

.PHONY: deps build crds test lint lab lab-down bench

## deps: install the Debian packages the lab and the tests use (only what is missing)
deps:
	./scripts/install-deps.sh

## build: build every binary and regenerate the CRDs
build: deps
	$(CARGO) build --workspace --all-features --bins
	ln -sf gingham target/debug/kubectl-gingham
	$(CARGO) run -q -p gingham-crds --bin crdgen

## crds: regenerate config/crd/ from the Rust types
crds:
	$(CARGO) run -p gingham-crds --bin crdgen

## test: every test: unit, mocked API server, kernel (root), lab e2e (root)
test: deps
	$(CARGO) test --workspace --all-features

## lint: formatting and clippy, as CI would judge them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

## lab: start the default lab (3 nodes, 6 pods, BGP mesh) and print readiness and a ping matrix
lab: build
	./target/debug/gingham-lab up

## lab-down: remove everything the lab created (also after a crash)
lab-down:
	./target/debug/gingham-lab down

## bench: gingham against its baselines in the same run (root, ~10 min); writes BENCHMARKS.md and bench-results/
bench:
	$(CARGO) build --release -p gingham-e2e -p gingham-node-agent -p gingham-operator --bins
	$(CARGO) bench -q -p gingham-operator --bench compute --no-run
	$(CARGO) bench -q -p gingham-stream --bench fanout --no-run
	$(CARGO) run --release -p gingham-e2e --bin gingham-bench
