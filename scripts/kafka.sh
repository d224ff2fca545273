#!/usr/bin/env bash
# A local Apache Kafka (KRaft, one combined broker+controller) for tests and local runs, from Maven
# Central's jars and the machine's Java 17. No Docker needed. Java and Maven are installed with apt-get
# when missing and this runs as root (or with password-less sudo).
#
#   scripts/kafka.sh start       download jars once, start Kafka, print its bootstrap address (last line)
#   scripts/kafka.sh stop        stop it (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status      running or not, and the address
#   scripts/kafka.sh bootstrap   print the bootstrap address (exit 1 if not running)
#   scripts/kafka.sh wait        wait until the broker answers
#   scripts/kafka.sh bounce [S]  kill -9 the broker, and start it again S seconds later (5) on the same
#                                data and ports
#   scripts/kafka.sh topics ...  kafka-topics with --bootstrap-server filled in
#   scripts/kafka.sh produce TOPIC [ARGS]  lines from stdin into TOPIC; `key<TAB>value` with --keyed;
#                                ARGS go to Kafka's console producer (--compression-codec zstd, ...)
#   scripts/kafka.sh consume TOPIC [ARGS]  TOPIC from the beginning as `key<TAB>value` lines, until
#                                idle for 5 s (--timeout-ms N to change; ARGS go to the console consumer)
#   scripts/kafka.sh sasl-ssl    the SASL_SSL listener's settings, as NAME=value lines (see below)
#   scripts/kafka.sh segments TOPIC-PARTITION  the partition's record batches on disk (offsets, codec)
#
# Next to the PLAINTEXT listener, Kafka listens with SASL_SSL: TLS with a broker certificate signed by
# a CA made at each start ($KSTREAMS_KAFKA_DIR/tls/ca.pem), and SASL SCRAM-SHA-512 or PLAIN as user
# `kstreams`, password `kstreams-secret` (test credentials, made at format time).
#
# Environment: KAFKA_VERSION (4.3.0), KSTREAMS_KAFKA_DIR (/tmp/kstreams-kafka: data, logs, pid, tls),
# KSTREAMS_KAFKA_CACHE (~/.cache/kstreams/kafka-<version>: jars), KSTREAMS_KAFKA_PORT (a free port),
# KSTREAMS_KAFKA_LOG4J (a log4j2 configuration for the broker instead of scripts/kafka/log4j2.xml's WARN).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version="${KAFKA_VERSION:-4.3.0}"
state_dir="${KSTREAMS_KAFKA_DIR:-/tmp/kstreams-kafka}"
cache="${KSTREAMS_KAFKA_CACHE:-$HOME/.cache/kstreams/kafka-$version}"
pid_file="$state_dir/kafka.pid"
addr_file="$state_dir/bootstrap"
log_file="$state_dir/kafka.log"
# The broker's and tools' logging: warnings only, unless a diagnosis asks for more.
log4j="${KSTREAMS_KAFKA_LOG4J:-$here/kafka/log4j2.xml}"

sasl_user=kstreams
sasl_password=kstreams-secret
# Guards the generated key stores only; they live in the state directory next to the data.
store_password=kstreams-test-store

die() { echo "kafka.sh: $*" >&2; exit 1; }

# shellcheck source=install.sh
source "$here/install.sh"

need_java() {
  if ! command -v java >/dev/null || ! command -v keytool >/dev/null; then
    apt_install openjdk-17-jre-headless ||
      die "Java 17 is not installed: install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless)"
  fi
}

fetch_jars() {
  # The cache is complete for this pom.xml: a changed dependency list downloads afresh.
  local wanted
  wanted=$(sha256sum "$here/kafka/pom.xml" | cut -d' ' -f1)
  if [ -f "$cache/.complete" ] && [ "$(cat "$cache/.complete")" = "$wanted" ]; then return 0; fi
  if ! command -v mvn >/dev/null; then
    apt_install maven ||
      die "Maven is not installed and the Kafka jars are not cached in $cache: install it (sudo apt-get install maven)"
  fi
  echo "kafka.sh: downloading Apache Kafka $version jars into $cache (once)" >&2
  rm -f "$cache"/*.jar
  mkdir -p "$cache"
  if ! mvn -q -B -f "$here/kafka/pom.xml" -Dkafka.version="$version" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache" >"$state_dir/mvn.log" 2>&1; then
    tail -n 30 "$state_dir/mvn.log" >&2
    die "could not download Kafka $version from Maven Central (log: $state_dir/mvn.log)"
  fi
  echo "$wanted" >"$cache/.complete"
}

classpath() { echo "$cache/*"; }

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# A port nothing listens on, and not one in $taken (the ports this start already chose). Below the
# kernel's ephemeral range: while a bounced broker is down, its clients' reconnections take local ports
# from that range, and one of them could hold a listener port when the broker comes back.
taken=" "
free_port() {
  local port low=32768 span
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ < /proc/sys/net/ipv4/ip_local_port_range
  fi
  span=$((low - 20000))
  [ "$span" -ge 1000 ] || span=40000
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % span))
    case "$taken" in *" $port "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      taken="$taken$port "
      echo "$port"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1"
}

kafka_java() {
  java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$log4j" "$@"
}

# A CA, and a broker certificate it signs for 127.0.0.1 and localhost, made afresh at each start.
make_tls() {
  local tls="$state_dir/tls" p="$store_password"
  rm -rf "$tls"
  mkdir -p "$tls"
  keytool -genkeypair -alias ca -dname "CN=kstreams test CA" -ext bc:c -keyalg RSA -keysize 2048 \
    -validity 3650 -storetype PKCS12 -keystore "$tls/ca.p12" -storepass "$p" >/dev/null 2>&1
  keytool -exportcert -rfc -alias ca -keystore "$tls/ca.p12" -storepass "$p" >"$tls/ca.pem" 2>/dev/null
  keytool -genkeypair -alias broker -dname "CN=localhost" -keyalg RSA -keysize 2048 -validity 3650 \
    -storetype PKCS12 -keystore "$tls/broker.p12" -storepass "$p" >/dev/null 2>&1
  keytool -certreq -alias broker -keystore "$tls/broker.p12" -storepass "$p" 2>/dev/null |
    keytool -gencert -alias ca -keystore "$tls/ca.p12" -storepass "$p" -rfc -validity 3650 \
      -ext "SAN=ip:127.0.0.1,dns:localhost" -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth \
      >"$tls/broker.pem" 2>/dev/null
  keytool -importcert -noprompt -alias ca -file "$tls/ca.pem" -keystore "$tls/broker.p12" -storepass "$p" \
    >/dev/null 2>&1
  keytool -importcert -noprompt -alias broker -file "$tls/broker.pem" -keystore "$tls/broker.p12" \
    -storepass "$p" >/dev/null 2>&1
  [ -s "$tls/ca.pem" ] && [ -s "$tls/broker.pem" ] || die "could not make the test certificates in $tls"
}

# A metadata request through Kafka's own admin tooling: the broker is ready when it answers.
answers() {
  timeout 30 java -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$log4j" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --list >/dev/null 2>&1
}

wait_ready() {
  local addr="$1" deadline=$((SECONDS + ${KSTREAMS_KAFKA_START_TIMEOUT:-180}))
  until answers "$addr"; do
    if ! running; then
      tail -n 40 "$log_file" >&2 || true
      die "Kafka exited during start-up (log: $log_file)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$log_file" >&2 || true
      die "Kafka at $addr did not answer within ${KSTREAMS_KAFKA_START_TIMEOUT:-180} s (log: $log_file)"
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
  local port controller_port sasl_port
  port="${KSTREAMS_KAFKA_PORT:-$(free_port)}"
  taken=" $port "
  controller_port=$(free_port)
  sasl_port=$(free_port)
  local data="$state_dir/data" tls="$state_dir/tls"
  rm -rf "$data"
  mkdir -p "$data"
  make_tls
  {
    cat "$here/kafka/server.properties"
    cat <<PROPS
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
log.dirs=$data
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$sasl_password";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$store_password
listener.name.sasl_ssl.ssl.key.password=$store_password
PROPS
  } >"$state_dir/server.properties"
  local cluster_id
  # Kafka's own generator: a base64url UUID that never starts with '-' (which format would read as an option).
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [ -n "$cluster_id" ] || die "could not make a cluster id with Kafka's storage tool"
  if ! kafka_java kafka.tools.StorageTool format --cluster-id="$cluster_id" --config="$state_dir/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=$sasl_user,password=$sasl_password]" >"$state_dir/format.log" 2>&1; then
    cat "$state_dir/format.log" >&2
    die "could not format Kafka's storage in $data"
  fi
  : >"$log_file"
  launch
  echo "127.0.0.1:$port" >"$addr_file"
  echo "127.0.0.1:$sasl_port" >"$state_dir/bootstrap-sasl-ssl"
  wait_ready "127.0.0.1:$port"
  echo "kafka.sh: Apache Kafka $version is up (pid $(cat "$pid_file"), log $log_file)" >&2
  cat "$addr_file"
}

# Starts the broker on the configuration and data in $state_dir, in the background.
launch() {
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j" -cp "$(classpath)" \
    kafka.Kafka "$state_dir/server.properties" >>"$log_file" 2>&1 &
  echo $! >"$pid_file"
}

# kill -9 the broker, wait, and start it again on the same data and ports: what a crashed and restarted
# broker (or `docker compose restart`) looks like to the applications.
bounce() {
  local down="${1:-5}" pid
  running || die "Kafka is not running (scripts/kafka.sh start)"
  pid=$(cat "$pid_file")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  echo "kafka.sh: killed Kafka (pid $pid); starting it again in $down s" >&2
  sleep "$down"
  launch
  wait_ready "$(cat "$addr_file")"
  echo "kafka.sh: Kafka is back (pid $(cat "$pid_file"))" >&2
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
  bounce) bounce "${2:-5}" ;;
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
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$addr_file")" "$@" ;;
  produce)
    [ $# -ge 2 ] || die "usage: scripts/kafka.sh produce TOPIC [--keyed] [console producer options]"
    running || die "Kafka is not running (scripts/kafka.sh start)"
    topic="$2"; shift 2
    keyed=()
    if [ "${1:-}" = --keyed ]; then
      keyed=(--reader-property parse.key=true --reader-property "key.separator=$(printf '\t')"); shift
    fi
    kafka_java org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$(cat "$addr_file")" --topic "$topic" \
      "${keyed[@]}" "$@" 2> >(grep -v '^SLF4J' >&2) ;;
  consume)
    [ $# -ge 2 ] || die "usage: scripts/kafka.sh consume TOPIC [console consumer options]"
    running || die "Kafka is not running (scripts/kafka.sh start)"
    topic="$2"; shift 2
    kafka_java org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$(cat "$addr_file")" \
      --topic "$topic" --from-beginning --timeout-ms 5000 --formatter-property print.key=true \
      --formatter-property "key.separator=$(printf '\t')" "$@" \
      2> >(grep -v '^SLF4J\|TimeoutException\|Processed a total\|KIP-848' >&2) ;;
  sasl-ssl)
    running || die "Kafka is not running (scripts/kafka.sh start)"
    echo "KSTREAMS_SASL_SSL_BOOTSTRAP=$(cat "$state_dir/bootstrap-sasl-ssl")"
    echo "KSTREAMS_SASL_SSL_CA=$state_dir/tls/ca.pem"
    echo "KSTREAMS_SASL_USERNAME=$sasl_user"
    echo "KSTREAMS_SASL_PASSWORD=$sasl_password" ;;
  segments)
    [ $# -eq 2 ] || die "usage: scripts/kafka.sh segments TOPIC-PARTITION"
    running || die "Kafka is not running (scripts/kafka.sh start)"
    [ -d "$state_dir/data/$2" ] || die "no partition $2 in $state_dir/data"
    kafka_java org.apache.kafka.tools.DumpLogSegments --files "$state_dir/data/$2"/*.log ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
