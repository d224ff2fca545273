#!/usr/bin/env bash
# kstreams side by side with Apache Kafka Streams and Quix Streams, on the same broker and the same data:
#
#   ./scripts/bench-compare.sh [--records N] [--rounds R] [--value-sizes 100,1024] [--workloads a,b]
#                              [--systems kstreams,kafka-streams,quix] [--timeout SECONDS] [--no-engine]
#
# Defaults: 1.5 M records of 100 B, 3 rounds (about half an hour on 2 cores: Quix Streams' stateful
# workloads take 20 k records/s). --no-engine skips the criterion bench and keeps its last figures.
# streamprocesswithwindowstore is not in the defaults: at these record counts it takes longer than the
# timeout in both systems (docs/benchmarks.md, Windowed workloads); name it with --records 300000.
#
# Builds what it needs (the Kafka Streams peer with Maven, a venv with the pinned quixstreams under
# ~/.cache/kstreams, the benches), runs the in-process engine bench (criterion), starts Kafka
# (scripts/kafka.sh) unless KSTREAMS_BOOTSTRAP is set, loads the data once per value size, runs every
# workload of every system in interleaved rounds, and writes docs/benchmarks.md (between its generated
# markers) and docs/benchmarks.svg. Prints figures; asserts nothing. KSTREAMS_BENCH_JVM_OPTS passes
# options to the Kafka Streams JVM (default: none).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The versions the comparison is pinned to: the broker's Kafka Streams (pom.xml) and this Quix Streams.
quix_version=3.28.1
cache="$HOME/.cache/kstreams"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"

engine=1
args=(--systems kstreams,kafka-streams,quix
      --workloads consume,consumeproduce,streamprocess,streamprocesswithsink,streamprocesswithstatestore,streamcount,streamcountwindowed,streamtablejoin,streamstreamjoin,tabletablejoin
      --records 1500000 --value-sizes 100)
while [ $# -gt 0 ]; do
  case "$1" in
    --no-engine) engine=0; shift ;;
    --records|--rounds|--value-sizes|--value-size|--workloads|--systems|--timeout) args+=("$1" "$2"); shift 2 ;;
    *) echo "bench-compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

echo "== Kafka Streams peer (Maven)" >&2
command -v mvn >/dev/null || { echo "maven is needed (apt-get install maven)" >&2; exit 1; }
mvn -q -B -f benches/peers/kafka-streams/pom.xml package dependency:build-classpath \
  -Dmdep.outputFile=target/classpath.txt >&2

echo "== Quix Streams $quix_version (venv in $cache/quix-venv)" >&2
venv="$cache/quix-venv"
if ! "$venv/bin/python" -c "import quixstreams, sys; sys.exit(quixstreams.__version__ != '$quix_version')" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "quixstreams==$quix_version" >&2
fi

if [ "$engine" = 1 ]; then
  echo "== engine bench (criterion, in process)" >&2
  cargo bench -p kstreams --bench engine >&2
fi

if [ -z "${KSTREAMS_BOOTSTRAP:-}" ]; then
  KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh start | tail -n 1)
fi
export KSTREAMS_BOOTSTRAP

echo "== end to end on Kafka at $KSTREAMS_BOOTSTRAP" >&2
cargo bench -p kstreams --features kafka-tests --bench kafka_throughput -- \
  --kafka-streams "$root/benches/peers/kafka-streams" --python "$venv/bin/python" \
  --docs "$root/docs" --engine "$CARGO_TARGET_DIR/criterion" "${args[@]}"
