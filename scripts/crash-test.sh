#!/usr/bin/env bash
# The crash-test harness (examples/crash_test): kills application instances while they process and
# checks that nothing was lost or duplicated. Starts Kafka (scripts/kafka.sh) unless KSTREAMS_BOOTSTRAP
# is set. Arguments go to the harness, e.g.
#   ./scripts/crash-test.sh                                  # the long run: 50k records, 5 kills, a zombie
#   ./scripts/crash-test.sh --guarantee at_least_once
#   ./scripts/crash-test.sh --records 3000 --rate 150 --kills 2 --kills-in-txn 1 --broker-bounces 1   # CI's short run
#   ./scripts/crash-test.sh --broker-bounces 3              # the long run, with three broker restarts
set -euo pipefail
cd "$(dirname "$0")/.."
started_here=0
if [ -z "${KSTREAMS_BOOTSTRAP:-}" ]; then
  KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh start | tail -n 1)
  started_here=1
fi
export KSTREAMS_BOOTSTRAP
status=0
cargo run --quiet --example crash_test -- "$@" || status=$?
if [ "$started_here" = 1 ] && [ -z "${KSTREAMS_KEEP_KAFKA:-}" ]; then
  ./scripts/kafka.sh stop
fi
exit $status
