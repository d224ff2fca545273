#!/usr/bin/env bash
# End-to-end throughput of kstreams against a local Apache Kafka: ./scripts/bench.sh [--records N]
# [--value-size B] [--workloads consume,consumeproduce,stateless,count,streamcount,...]. Starts Kafka
# (scripts/kafka.sh) unless KSTREAMS_BOOTSTRAP is set. Prints a Markdown table. The comparison with
# Kafka Streams and Quix Streams is scripts/bench-compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KSTREAMS_BOOTSTRAP:-}" ]; then
  KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh start | tail -n 1)
fi
export KSTREAMS_BOOTSTRAP
cargo bench -p kstreams --features kafka-tests --bench kafka_throughput -- "$@"
