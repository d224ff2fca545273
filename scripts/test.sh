#!/usr/bin/env bash
# The project's test command (the one in the README, the one CI runs).
# Runs every unit, integration and doc test of the workspace. Needs no broker yet: the tests against
# real Kafka join here, with this script starting Kafka itself, when the runtime lands.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features "$@"
