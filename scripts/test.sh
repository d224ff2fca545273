#!/usr/bin/env bash
# The project's test command (the one in the README, the one CI runs).
#  1. every unit, integration and doc test of the workspace (no broker needed; the embedded-broker suites
#     and the differential suite against Kafka Streams' expected files run here), the check that those
#     files still are what Kafka Streams gives (scripts/differential.sh --check: Java 17 and Maven), and
#     the README's main example on the embedded broker;
#  2. starts a local Apache Kafka (scripts/kafka.sh) and runs the tests against it (feature kafka-tests),
#     over its PLAINTEXT and its SASL_SSL listener. They fail loudly if Kafka cannot be started; they never
#     skip;
#  3. the crash-test harness (examples/crash_test) in its short configuration, under both guarantees
#     (and under exactly_once_v2 with `group.assignor=streams`),
#     with a broker restart and network faults (a partition of one instance, every connection cut)
#     through the harness's proxy when the Kafka is scripts/kafka.sh's;
#  4. broker faults on a three-node cluster (scripts/kafka.sh cluster, started here and stopped after):
#     the crash-test harness killing partition leaders and coordinators, and a rolling restart, in a
#     short configuration under both guarantees (KSTREAMS_SKIP_CLUSTER=1 leaves it out, loudly).
# Set KSTREAMS_BOOTSTRAP=host:port to use a Kafka you run yourself instead (the SASL_SSL tests then need
# the KSTREAMS_SASL_SSL_* settings that `scripts/kafka.sh sasl-ssl` prints, or they are left out, loudly).
# On a fresh machine it installs what is missing where it can (root or password-less sudo, apt-get):
# libclang and OpenSSL's headers during the build (scripts/rustc-wrapper), Java 17 and Maven for Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "test.sh: cargo is not installed: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

cargo test --workspace "$@"
echo "== the differential suite's expected files, regenerated from Kafka Streams (tests/differential/README.md)"
./scripts/differential.sh --check
echo "== the README's main example (embedded broker)"
cargo run --quiet --example order_totals -- --orders 200

started_here=0
if [ -z "${KSTREAMS_BOOTSTRAP:-}" ]; then
  KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh start | tail -n 1)
  started_here=1
fi
export KSTREAMS_BOOTSTRAP
ours=0
[ "$(./scripts/kafka.sh bootstrap 2>/dev/null)" = "$KSTREAMS_BOOTSTRAP" ] && ours=1
# The SASL_SSL listener's settings, when the Kafka in use is the one scripts/kafka.sh runs.
if [ -z "${KSTREAMS_SASL_SSL_BOOTSTRAP:-}" ] && [ "$ours" = 1 ]; then
  while IFS= read -r line; do export "${line?}"; done < <(./scripts/kafka.sh sasl-ssl)
fi
suites=()
for file in tests/kafka_*.rs; do
  suite=$(basename "$file" .rs)
  if [ "$suite" = kafka_security ] && [ -z "${KSTREAMS_SASL_SSL_BOOTSTRAP:-}" ]; then
    echo "== NOT RUN: kafka_security (TLS and SASL): $KSTREAMS_BOOTSTRAP is not scripts/kafka.sh's Kafka" \
      "and KSTREAMS_SASL_SSL_BOOTSTRAP is not set" >&2
    continue
  fi
  if [ "$suite" = kafka_broker_bounce ] && [ "$ours" = 0 ]; then
    echo "== NOT RUN: kafka_broker_bounce: it restarts the broker, and $KSTREAMS_BOOTSTRAP is not" \
      "scripts/kafka.sh's Kafka" >&2
    continue
  fi
  suites+=(--test "$suite")
done
echo "== tests against Apache Kafka at $KSTREAMS_BOOTSTRAP (SASL_SSL: ${KSTREAMS_SASL_SSL_BOOTSTRAP:-none})"
status=0
# Examples that need the suites' features (the HTTP one: tokio) are not built by the first `cargo test`,
# and `cargo test --test ...` builds no example: build them here for tests/kafka_examples.rs.
cargo build -p kstreams --features kafka-tests --example order_totals_http
cargo test -p kstreams --features kafka-tests "${suites[@]}" "$@" || status=$?
# The crash-test harness's short configuration (the long one is ./scripts/crash-test.sh with defaults),
# with a broker restart and two network faults when the broker is scripts/kafka.sh's.
bounces=()
[ "$ours" = 1 ] && bounces=(--broker-bounces 1 --network-faults 2)
for guarantee in exactly_once_v2 at_least_once; do
  echo "== crash test, short configuration, $guarantee ${bounces[*]}"
  cargo run --quiet --example crash_test -- --guarantee "$guarantee" --records 3000 --rate 150 \
    --kills 2 --kills-in-txn 1 --zombies 1 "${bounces[@]}" || status=$?
done
# The same under the library's own group member and Kafka Streams' task assignor (`group.assignor=streams`),
# with a standby of every task: killed instances' tasks fail over to their standbys.
echo "== crash test, short configuration, exactly_once_v2, group.assignor=streams, num.standby.replicas=1"
cargo run --quiet --example crash_test -- --guarantee exactly_once_v2 --group-assignor streams \
  --num-standby-replicas 1 --records 3000 --rate 150 --kills 2 --kills-in-txn 1 --zombies 1 || status=$?
if [ "$started_here" = 1 ] && [ -z "${KSTREAMS_KEEP_KAFKA:-}" ]; then
  ./scripts/kafka.sh stop
fi
if [ -n "${KSTREAMS_SKIP_CLUSTER:-}" ]; then
  echo "== NOT RUN: broker faults on the three-node cluster (KSTREAMS_SKIP_CLUSTER is set)" >&2
else
  # The long form: docs/reliability.md.
  cluster=$(./scripts/kafka.sh cluster start | tail -n 1)
  echo "== crash test on the three-node cluster, short configuration, exactly_once_v2"
  cargo run --quiet --example crash_test -- --bootstrap-servers "$cluster" --guarantee exactly_once_v2 \
    --records 4000 --rate 100 --kills 1 --kills-in-txn 0 --zombies 0 --no-scaling \
    --leader-kills 3 --coordinator-kills 2 --rolling-restarts 1 --broker-down-s 2 --network-faults 1 || status=$?
  echo "== crash test on the three-node cluster, short configuration, at_least_once"
  cargo run --quiet --example crash_test -- --bootstrap-servers "$cluster" --guarantee at_least_once \
    --records 4000 --rate 100 --kills 1 --kills-in-txn 0 --zombies 0 --no-scaling \
    --leader-kills 3 --broker-down-s 2 || status=$?
  ./scripts/kafka.sh cluster stop
fi
exit $status
