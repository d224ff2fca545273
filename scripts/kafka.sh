#!/usr/bin/env bash
# A local Apache Kafka (KRaft, one combined broker+controller) for tests and local runs, from Maven
# Central's jars and the machine's Java 17. No Docker needed.
#
#   scripts/kafka.sh start       download jars once, start Kafka, print its bootstrap address (last line)
#   scripts/kafka.sh stop        stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status      running or not, and the address
#   scripts/kafka.sh bootstrap   print the bootstrap address (exit 1 if not running)
#   scripts/kafka.sh wait        wait until the broker answers
#   scripts/kafka.sh topics ...  kafka-topics with --bootstrap-server filled in
#
# Environment: KAFKA_VERSION (4.3.0), KSTREAMS_KAFKA_DIR (/tmp/kstreams-kafka: data, logs, pid),
# KSTREAMS_KAFKA_CACHE (~/.cache/kstreams/kafka-<version>: jars), KSTREAMS_KAFKA_PORT (a free port).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version="${KAFKA_VERSION:-4.3.0}"
state_dir="${KSTREAMS_KAFKA_DIR:-/tmp/kstreams-kafka}"
cache="${KSTREAMS_KAFKA_CACHE:-$HOME/.cache/kstreams/kafka-$version}"
pid_file="$state_dir/kafka.pid"
addr_file="$state_dir/bootstrap"
log_file="$state_dir/kafka.log"

die() { echo "kafka.sh: $*" >&2; exit 1; }

need_java() {
  command -v java >/dev/null || die "java is not installed (Java 17 is needed: apt-get install openjdk-17-jre-headless)"
}

fetch_jars() {
  if [ -f "$cache/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "maven is not installed (apt-get install maven) and the jars are not cached in $cache"
  echo "kafka.sh: downloading Apache Kafka $version jars into $cache (once)" >&2
  mkdir -p "$cache"
  if ! mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache" >"$state_dir/mvn.log" 2>&1; then
    tail -n 30 "$state_dir/mvn.log" >&2
    die "could not download Kafka $version from Maven Central (log: $state_dir/mvn.log)"
  fi
  touch "$cache/.complete"
}

classpath() { echo "$cache/*"; }

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A metadata request through Kafka's own admin tooling: the broker is ready when it answers.
answers() {
  timeout 30 java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$here/kafka/log4j2.xml" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --list >/dev/null 2>&1
}

wait_ready() {
  local addr="$1" deadline=$((SECONDS + ${KSTREAMS_KAFKA_START_TIMEOUT:-90}))
  until answers "$addr"; do
    if ! running; then
      tail -n 40 "$log_file" >&2 || true
      die "Kafka exited during start-up (log: $log_file)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$log_file" >&2 || true
      die "Kafka at $addr did not answer within ${KSTREAMS_KAFKA_START_TIMEOUT:-90} s (log: $log_file)"
    fi
    sleep 1
  done
}

start() {
  need_java
  mkdir -p "$state_dir"
  if running && [ -f "$addr_file" ] && answers "$(cat "$addr_file")"; then
    cat "$addr_file"
    return 0
  fi
  stop_quietly
  fetch_jars
  local port="${KSTREAMS_KAFKA_PORT:-$(free_port)}" controller_port
  controller_port=$(free_port)
  local data="$state_dir/data"
  rm -rf "$data"
  mkdir -p "$data"
  cat >"$state_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests fence zombies in seconds, not the production minimum of 6 s; and a crashed instance's open
# transaction is aborted within about a second of its timeout instead of ten.
group.min.session.timeout.ms=1000
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
auto.create.topics.enable=false
log.flush.interval.messages=9223372036854775807
PROPS
  local cluster_id
  # A base64url UUID, as `kafka-storage random-uuid` makes; never one starting with '-', which the storage
  # tool would read as an option (Kafka's own generator avoids it the same way).
  cluster_id=$(python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break')
  if ! java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$here/kafka/log4j2.xml" kafka.tools.StorageTool \
      format --cluster-id="$cluster_id" --config="$state_dir/server.properties" >"$state_dir/format.log" 2>&1; then
    cat "$state_dir/format.log" >&2
    die "could not format Kafka's storage in $data"
  fi
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/kafka/log4j2.xml" -cp "$(classpath)" \
    kafka.Kafka "$state_dir/server.properties" >"$log_file" 2>&1 &
  echo $! >"$pid_file"
  echo "127.0.0.1:$port" >"$addr_file"
  wait_ready "127.0.0.1:$port"
  echo "kafka.sh: Apache Kafka $version is up (pid $(cat "$pid_file"), log $log_file)" >&2
  cat "$addr_file"
}

stop_quietly() {
  if [ -f "$pid_file" ]; then
    local pid
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        echo "kafka.sh: Kafka did not stop within 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$pid_file"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly; echo "kafka.sh: stopped" >&2 ;;
  status)
    if running; then echo "running at $(cat "$addr_file") (pid $(cat "$pid_file"))"; else echo "not running"; fi ;;
  bootstrap)
    running || die "Kafka is not running (scripts/kafka.sh start)"
    cat "$addr_file" ;;
  wait)
    running || die "Kafka is not running (scripts/kafka.sh start)"
    wait_ready "$(cat "$addr_file")" ;;
  topics)
    shift
    running || die "Kafka is not running (scripts/kafka.sh start)"
    java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$here/kafka/log4j2.xml" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$addr_file")" "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
