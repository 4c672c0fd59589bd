# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test lint moto build

# Runs trustsync end to end against a local moto server with the example policies.
demo: moto
	cargo build --locked --bins
	scripts/demo.sh

# The whole test suite: unit, schema and end-to-end tests against moto.
test: moto
	cargo test --locked --all-targets

# Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

# Installs the pinned moto server into .venv when it is missing.
moto:
	scripts/setup-moto.sh
