# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test lint bench test-env local local-stop

# Runs trustsync end to end against a local moto server with the example policies.
demo: test-env
	cargo build --locked --workspace --bins --features trustsync/loopback-graph
	scripts/demo.sh

# The whole test suite: unit, schema, chart and end-to-end tests against moto and the
# local Graph server (a workspace crate, built first; `loopback-graph` lets trustsync reach
# it over plain http on loopback, which production builds refuse).
test: test-env
	cargo test --locked --workspace --all-targets --features trustsync/loopback-graph

# Scale benchmark (N = 10, 100, 1000 mappings); writes docs/benchmarks.md.
bench: test-env
	cargo build --locked --release -p trustsync-graph-server
	cargo bench --locked --bench scale --features loopback-graph

# Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets --features trustsync/loopback-graph -- -D warnings
	cargo clippy --locked --all-targets -- -D warnings

# Starts moto and the local Graph server with the demo's data and leaves them running, for
# the README's tour; prints the environment to use. `make local-stop` stops them.
# (CARGO: `make local CARGO=:` skips the build when the binaries are already built.)
CARGO ?= cargo
local: test-env
	$(CARGO) build --locked --workspace --bins --features trustsync/loopback-graph
	scripts/local-env.sh start

local-stop:
	scripts/local-env.sh stop

# Installs the pinned test servers and tools (moto, the Helm SDK) into .venv.
test-env:
	scripts/setup-test-env.sh
