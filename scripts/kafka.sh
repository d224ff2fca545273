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
#   scripts/kafka.sh proxied     `PROXY BROKER`: the PROXIED listener's advertised address and the one it
#                                listens on (see below)
#   scripts/kafka.sh segments TOPIC-PARTITION  the partition's record batches on disk (offsets, codec)
#   scripts/kafka.sh abort-hanging  abort every hanging transaction (open on a partition while its
#                                coordinator no longer counts that partition in: KAFKA-20734 after a
#                                bounce, docs/operations.md); prints how many it aborted (last line)
#
# A three-node cluster for broker-fault tests, apart from the single broker (its own directory and
# ports; both can run at once). Each node is broker and controller; topics are replicated 3 times with
# min.insync.replicas=2, the internal topics too. Nodes are numbered 1 to 3.
#   scripts/kafka.sh cluster start       start it, print its bootstrap addresses (last line)
#   scripts/kafka.sh cluster stop | status | bootstrap
#   scripts/kafka.sh cluster bounce N [S]        kill -9 node N, start it again S seconds later (5)
#   scripts/kafka.sh cluster roll [S]            restart every node in turn (SIGTERM, S seconds down,
#                                                start, wait until it leads or follows again)
#   scripts/kafka.sh cluster leader TOPIC P      the node leading partition P of TOPIC
#   scripts/kafka.sh cluster group-coordinator GROUP    the node coordinating consumer group GROUP
#   scripts/kafka.sh cluster txn-coordinator PREFIX     the node coordinating the first open or ongoing
#                                                transactional id that starts with PREFIX
#   scripts/kafka.sh cluster proxied     `PROXY BROKER` for nodes 1, 2 and 3 in turn, on one line: each
#                                        node's PROXIED listener, as the single broker's (below)
#
# Next to the PLAINTEXT listener, Kafka listens with SASL_SSL: TLS with a broker certificate signed by
# a CA made at each start ($KSTREAMS_KAFKA_DIR/tls/ca.pem), and SASL SCRAM-SHA-512 or PLAIN as user
# `kstreams`, password `kstreams-secret` (test credentials, made at format time).
#
# And with PLAINTEXT on a third listener, PROXIED, that advertises another free port, where nothing
# listens unless a fault-injecting proxy forwards it to the listener's own (the crash test's network
# faults): clients bootstrapped there keep talking through the proxy, whatever the metadata says.
#
# Environment: KAFKA_VERSION (4.3.0), KSTREAMS_KAFKA_DIR (/tmp/kstreams-kafka: data, logs, pid, tls),
# KSTREAMS_KAFKA_CACHE (~/.cache/kstreams/kafka-<version>: jars), KSTREAMS_KAFKA_PORT (a free port),
# KSTREAMS_KAFKA_LOG4J (a log4j2 configuration for the broker instead of scripts/kafka/log4j2.xml's WARN),
# KSTREAMS_KAFKA_CLUSTER_DIR (/tmp/kstreams-kafka-cluster: the cluster's nodes, node-1 to node-3).
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
  mkdir -p "$cache" "$state_dir"
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
  local port controller_port sasl_port proxied_port proxy_port
  port="${KSTREAMS_KAFKA_PORT:-$(free_port)}"
  taken=" $port "
  controller_port=$(free_port)
  sasl_port=$(free_port)
  proxied_port=$(free_port)
  proxy_port=$(free_port)
  local data="$state_dir/data" tls="$state_dir/tls"
  rm -rf "$data"
  mkdir -p "$data"
  make_tls
  {
    cat "$here/kafka/server.properties"
    cat <<PROPS
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port,PROXIED://127.0.0.1:$proxied_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port,PROXIED://127.0.0.1:$proxy_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,PROXIED:PLAINTEXT,CONTROLLER:PLAINTEXT
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
  echo "127.0.0.1:$proxy_port 127.0.0.1:$proxied_port" >"$state_dir/proxied"
  wait_ready "127.0.0.1:$port"
  echo "kafka.sh: Apache Kafka $version is up (pid $(cat "$pid_file"), log $log_file)" >&2
  cat "$addr_file"
}

# Starts the broker on the configuration and data in $state_dir, in the background, in a session of its
# own: a broker restarted by a test's fault (`bounce`) must not die with that test's process group.
launch() {
  setsid nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j" -cp "$(classpath)" \
    kafka.Kafka "$state_dir/server.properties" >>"$log_file" 2>&1 &
  echo $! >"$pid_file"
}

# kill -9 the broker of $pid_file ($2 in messages), wait until it is gone, and start it again $1 seconds
# later on the same data and ports; the caller waits until it is back.
kill_and_launch() {
  local down="$1" what="$2" pid
  pid=$(cat "$pid_file")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  echo "kafka.sh: killed $what (pid $pid); starting it again in $down s" >&2
  sleep "$down"
  launch
}

# --- the three-node cluster ---------------------------------------------------------------------------
cluster_dir="${KSTREAMS_KAFKA_CLUSTER_DIR:-/tmp/kstreams-kafka-cluster}"
nodes="1 2 3"

# Points the single-broker functions (launch, running, wait_ready, stop_quietly) at node $1.
use_node() {
  [[ "$1" =~ ^[123]$ ]] || die "no node $1 in the cluster (nodes are 1, 2 and 3)"
  state_dir="$cluster_dir/node-$1"
  pid_file="$state_dir/kafka.pid"
  log_file="$state_dir/kafka.log"
  addr_file="$cluster_dir/bootstrap"
}

cluster_running() {
  local n
  for n in $nodes; do (use_node "$n"; running) || return 1; done
}

cluster_bootstrap() {
  [ -f "$cluster_dir/bootstrap" ] && cluster_running || die "the cluster is not running (scripts/kafka.sh cluster start)"
  cat "$cluster_dir/bootstrap"
}

cluster_start() {
  need_java
  mkdir -p "$cluster_dir"
  if [ -f "$cluster_dir/bootstrap" ] && cluster_running && answers "$(cat "$cluster_dir/bootstrap")"; then
    cat "$cluster_dir/bootstrap"
    return 0
  fi
  cluster_stop
  fetch_jars
  local n voters="" bootstrap="" proxied="" ports=() controllers=() proxied_ports=() proxy_ports=()
  for n in $nodes; do
    ports[n]=$(free_port)
    taken="$taken${ports[n]} "
    controllers[n]=$(free_port)
    taken="$taken${controllers[n]} "
    proxied_ports[n]=$(free_port)
    taken="$taken${proxied_ports[n]} "
    proxy_ports[n]=$(free_port)
    taken="$taken${proxy_ports[n]} "
    proxied="$proxied${proxied:+ }127.0.0.1:${proxy_ports[n]} 127.0.0.1:${proxied_ports[n]}"
    voters="$voters${voters:+,}$n@127.0.0.1:${controllers[n]}"
    bootstrap="$bootstrap${bootstrap:+,}127.0.0.1:${ports[n]}"
  done
  local cluster_id
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [ -n "$cluster_id" ] || die "could not make a cluster id with Kafka's storage tool"
  for n in $nodes; do
    use_node "$n"
    rm -rf "$state_dir"
    mkdir -p "$state_dir/data"
    {
      # The single broker's settings, made a cluster's: three replicas of everything, two in sync.
      grep -v -e '^node.id=' -e 'replication.factor=' -e 'min.isr=' "$here/kafka/server.properties"
      cat <<PROPS
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[n]},PROXIED://127.0.0.1:${proxied_ports[n]},CONTROLLER://127.0.0.1:${controllers[n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[n]},PROXIED://127.0.0.1:${proxy_ports[n]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state_dir/data
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
PROPS
    } >"$state_dir/server.properties"
    if ! kafka_java kafka.tools.StorageTool format --cluster-id="$cluster_id" \
        --config="$state_dir/server.properties" >"$state_dir/format.log" 2>&1; then
      cat "$state_dir/format.log" >&2
      die "could not format node $n's storage in $state_dir/data"
    fi
    : >"$log_file"
    launch
  done
  echo "$bootstrap" >"$cluster_dir/bootstrap"
  echo "$proxied" >"$cluster_dir/proxied"
  for n in $nodes; do
    use_node "$n"
    wait_ready "127.0.0.1:${ports[n]}"
  done
  echo "kafka.sh: a three-node Apache Kafka $version cluster is up (logs $cluster_dir/node-*/kafka.log)" >&2
  cat "$cluster_dir/bootstrap"
}

cluster_stop() {
  local n
  for n in $nodes; do (use_node "$n"; stop_quietly); done
}

# The address node $1 listens on.
node_address() {
  grep '^advertised.listeners=' "$cluster_dir/node-$1/server.properties" | sed 's|.*PLAINTEXT://||; s|,.*||'
}

# Waits until node $1 answers and no partition of the cluster is under-replicated.
wait_node_back() {
  use_node "$1"
  wait_ready "$(node_address "$1")"
  local deadline=$((SECONDS + 120))
  while [ -n "$(kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$cluster_dir/bootstrap")" \
      --describe --under-replicated-partitions 2>/dev/null | head -n 1)" ]; do
    [ $SECONDS -lt $deadline ] || { echo "kafka.sh: partitions still under-replicated after 120 s" >&2; return 0; }
    sleep 1
  done
}

cluster_bounce() {
  local n="$1" down="${2:-5}"
  use_node "$n"
  running || die "node $n is not running"
  kill_and_launch "$down" "node $n"
  wait_listening "$(node_address "$n")"
  echo "kafka.sh: node $n is back (pid $(cat "$pid_file"))" >&2
}

# Waits until the broker at $1 (host:port) accepts connections: quicker than asking it with Kafka's
# tools (a JVM each time), so that a fault test's broker is back as soon as clients could see it.
wait_listening() {
  local host="${1%:*}" port="${1##*:}" deadline=$((SECONDS + ${KSTREAMS_KAFKA_START_TIMEOUT:-180}))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    running || die "Kafka exited during start-up (log: $log_file)"
    [ $SECONDS -lt $deadline ] || die "Kafka at $1 did not listen within ${KSTREAMS_KAFKA_START_TIMEOUT:-180} s (log: $log_file)"
    sleep 0.2
  done
}

# A rolling restart: each node in turn stopped cleanly, started again, and waited for until every
# partition has its replicas in sync again.
cluster_roll() {
  local n down="${1:-5}"
  for n in $nodes; do
    use_node "$n"
    stop_quietly
    echo "kafka.sh: stopped node $n; starting it again in $down s" >&2
    sleep "$down"
    launch
    wait_node_back "$n"
    echo "kafka.sh: node $n is back" >&2
  done
}

cluster_tool() {
  kafka_java "$@" 2> >(grep -v '^SLF4J' >&2)
}

cluster() {
  case "${1:-}" in
    start) cluster_start ;;
    stop) cluster_stop; echo "kafka.sh: cluster stopped" >&2 ;;
    status)
      if cluster_running; then echo "running at $(cat "$cluster_dir/bootstrap")"; else echo "not running (or not every node)"; fi ;;
    bootstrap) cluster_bootstrap ;;
    proxied)
      cluster_bootstrap >/dev/null
      [ -f "$cluster_dir/proxied" ] || die "this cluster was started without the PROXIED listeners: scripts/kafka.sh cluster stop, then start"
      cat "$cluster_dir/proxied" ;;
    bounce) [ $# -ge 2 ] || die "usage: scripts/kafka.sh cluster bounce NODE [SECONDS]"; cluster_bounce "$2" "${3:-5}" ;;
    roll) cluster_bootstrap >/dev/null; cluster_roll "${2:-5}" ;;
    leader)
      [ $# -eq 3 ] || die "usage: scripts/kafka.sh cluster leader TOPIC PARTITION"
      cluster_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cluster_bootstrap)" --describe --topic "$2" |
        awk -v p="$3" '{ for (i = 1; i < NF; i++) { if ($i == "Partition:") part = $(i + 1); if ($i == "Leader:" && part == p) { print $(i + 1); exit } } }' ;;
    group-coordinator)
      [ $# -eq 2 ] || die "usage: scripts/kafka.sh cluster group-coordinator GROUP"
      cluster_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$(cluster_bootstrap)" \
        --describe --group "$2" --state | grep -o '([0-9]*)' | head -n 1 | tr -d '()' ;;
    txn-coordinator)
      [ $# -eq 2 ] || die "usage: scripts/kafka.sh cluster txn-coordinator PREFIX"
      local id
      id=$(cluster_tool org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$(cluster_bootstrap)" list |
        awk -v p="$2" 'index($1, p) == 1 { print $1; exit }')
      [ -n "$id" ] || die "no transactional id starts with $2"
      cluster_tool org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$(cluster_bootstrap)" \
        describe --transactional-id "$id" | awk 'NR == 2 { print $1 }' ;;
    *) die "usage: scripts/kafka.sh cluster start|stop|status|bootstrap|bounce N [S]|roll [S]|leader TOPIC P|group-coordinator GROUP|txn-coordinator PREFIX|proxied" ;;
  esac
}

# kill -9 the broker, wait, and start it again on the same data and ports: what a crashed and restarted
# broker (or `docker compose restart`) looks like to the applications.
bounce() {
  local down="${1:-5}"
  running || die "Kafka is not running (scripts/kafka.sh start)"
  kill_and_launch "$down" Kafka
  wait_ready "$(cat "$addr_file")"
  echo "kafka.sh: Kafka is back (pid $(cat "$pid_file"))" >&2
}

# Kafka's own test for a hanging transaction (`kafka-transactions.sh find-hanging`): open on a partition
# while its coordinator no longer lists that partition, so no marker will ever come. With a maximum
# timeout of 0 it reports them at once rather than after 15 minutes; one that ends between the two looks
# is then not found again by `abort` (an error, skipped).
abort_hanging() {
  local bootstrap rows aborted=0 topic partition start
  bootstrap=$(cat "$addr_file")
  rows=$(kafka_java org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$bootstrap" \
    find-hanging --broker-id 1 --max-transaction-timeout 0 2> >(grep -v '^SLF4J' >&2) | awk 'NR > 1 { print $1, $2, $6 }')
  while read -r topic partition start; do
    [ -n "$topic" ] || continue
    if kafka_java org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$bootstrap" \
        abort --topic "$topic" --partition "$partition" --start-offset "$start" 2> >(grep -v '^SLF4J' >&2); then
      echo "kafka.sh: aborted the hanging transaction at $topic-$partition offset $start" >&2
      aborted=$((aborted + 1))
    fi
  done <<<"$rows"
  echo "$aborted"
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
  proxied)
    running || die "Kafka is not running (scripts/kafka.sh start)"
    [ -f "$state_dir/proxied" ] || die "this Kafka was started without the PROXIED listener: scripts/kafka.sh stop, then start"
    cat "$state_dir/proxied" ;;
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
  abort-hanging)
    running || die "Kafka is not running (scripts/kafka.sh start)"
    abort_hanging ;;
  cluster) shift; cluster "$@" ;;
  *) sed -n '2,50p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
