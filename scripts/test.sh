#!/usr/bin/env bash
# The project's test command (the one in the README, the one CI runs).
#  1. every unit, integration and doc test of the workspace (no broker needed; the embedded-broker suites
#     run here), and the README's main example on the embedded broker;
#  2. starts a local Apache Kafka (scripts/kafka.sh) and runs the tests against it (feature kafka-tests).
#     They fail loudly if Kafka cannot be started; they never skip.
# Set KSTREAMS_BOOTSTRAP=host:port to use a Kafka you run yourself instead.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace "$@"
echo "== the README's main example (embedded broker)"
cargo run --quiet --example order_totals -- --orders 200

started_here=0
if [ -z "${KSTREAMS_BOOTSTRAP:-}" ]; then
  KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh start | tail -n 1)
  started_here=1
fi
export KSTREAMS_BOOTSTRAP
echo "== tests against Apache Kafka at $KSTREAMS_BOOTSTRAP"
status=0
cargo test -p kstreams --features kafka-tests --test 'kafka_*' "$@" || status=$?
if [ "$started_here" = 1 ] && [ -z "${KSTREAMS_KEEP_KAFKA:-}" ]; then
  ./scripts/kafka.sh stop
fi
exit $status
