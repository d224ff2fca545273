#!/usr/bin/env bash
# The project's test command (the one in the README, the one CI runs).
#  1. every unit, integration and doc test of the workspace (no broker needed; the embedded-broker suites
#     run here), and the README's main example on the embedded broker;
#  2. starts a local Apache Kafka (scripts/kafka.sh) and runs the tests against it (feature kafka-tests).
#     They fail loudly if Kafka cannot be started; they never skip;
#  3. the crash-test harness (examples/crash_test) in its short configuration, under both guarantees.
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
# The crash-test harness's short configuration (the long one is ./scripts/crash-test.sh with defaults).
for guarantee in exactly_once_v2 at_least_once; do
  echo "== crash test, short configuration, $guarantee"
  cargo run --quiet --example crash_test -- --guarantee "$guarantee" --records 3000 --rate 150 \
    --kills 2 --kills-in-txn 1 --zombies 1 || status=$?
done
if [ "$started_here" = 1 ] && [ -z "${KSTREAMS_KEEP_KAFKA:-}" ]; then
  ./scripts/kafka.sh stop
fi
exit $status
