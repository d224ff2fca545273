#!/usr/bin/env bash
# The soak (docs/reliability.md, "The soak"): the crash-test harness for 30 minutes at a steady rate
# under exactly_once_v2, with periodic faults of every kind the single broker allows (kill -9 of an
# instance, some inside an open transaction, zombies, a clean restart, scale out and in, broker restarts,
# network partitions, cuts, stalls and latency), while instance 0 lives through all of it and its RSS is
# sampled every 10 s. Prints the verifier's checks, the RSS slope after warm-up, and every error the
# instances logged. Starts Kafka (scripts/kafka.sh) unless KSTREAMS_BOOTSTRAP is set; the broker
# restarts and network faults need that Kafka.
#   ./scripts/soak.sh                                   # 30 minutes at 100 records/s
#   SOAK_MINUTES=5 ./scripts/soak.sh --guarantee at_least_once
# Further arguments go to the harness (later options win).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${SOAK_MINUTES:-30}"
rate="${SOAK_RATE:-100}"
exec ./scripts/crash-test.sh --soak --records $((minutes * 60 * rate)) --rate "$rate" \
  --kills 6 --kills-in-txn 2 --zombies 2 --broker-bounces 3 --network-faults 8 "$@"
