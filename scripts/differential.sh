#!/usr/bin/env bash
# The Kafka Streams side of the differential suite (tests/differential/README.md): runs every case of
# tests/differential/cases through Apache Kafka Streams' own TopologyTestDriver (the broker's version,
# from Maven Central) and writes what it saw to tests/differential/expected/<case>.json; and runs Kafka
# Streams' task assignor over the groups of streams-core/testdata/assignor/groups.jsonl into expected.jsonl
# there (the assignor's check, streams-core's `assignments_are_kafka_streams_own`).
#
#   scripts/differential.sh            regenerate expected/ (and delete the files of cases that are gone)
#   scripts/differential.sh SUBSTRING  regenerate only the cases whose name contains SUBSTRING
#   scripts/differential.sh --check    regenerate into a temporary directory and fail on any difference
#                                      from the checked-in expected/ (what CI runs)
#
# Builds tests/differential/java with Maven first (quietly; the log is printed when the build fails).
# Java 17 (a JDK) and Maven are installed with apt-get when missing and this runs as root (or with
# password-less sudo). JAVA_OPTS replaces the runner's JVM options (default: -XX:TieredStopAtLevel=1, as
# the runs are short: the same time for half the CPU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite="$(cd "$here/.." && pwd)/tests/differential"
project="$suite/java"
expected="$suite/expected"

die() { echo "differential.sh: $*" >&2; exit 1; }

# shellcheck source=install.sh
source "$here/install.sh"

need_tools() {
  if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
    apt_install openjdk-17-jdk-headless ||
      die "a Java 17 JDK is not installed: install it (Debian/Ubuntu: sudo apt-get install openjdk-17-jdk-headless)"
  fi
  if ! command -v mvn >/dev/null; then
    apt_install maven || die "Maven is not installed: install it (sudo apt-get install maven)"
  fi
}

build() {
  mkdir -p "$project/target"
  local log="$project/target/build.log"
  if ! mvn -q -B -f "$project/pom.xml" package dependency:build-classpath \
      -Dmdep.outputFile=target/classpath.txt >"$log" 2>&1; then
    cat "$log" >&2
    die "could not build $project (log: $log)"
  fi
}

# run OUT_DIR [SUBSTRING]: the Java runner over every case (or the matching ones) into OUT_DIR.
run() {
  # shellcheck disable=SC2086 # JAVA_OPTS is a list of options
  java ${JAVA_OPTS--XX:TieredStopAtLevel=1} -cp "$project/target/classes:$(cat "$project/target/classpath.txt")" \
    kstreams.differential.Main "$suite/cases" "$@"
}

# assign OUT_FILE: Kafka Streams' task assignor over the assignor's groups.
assignor="$(cd "$here/.." && pwd)/streams-core/testdata/assignor"
assign() {
  # shellcheck disable=SC2086 # JAVA_OPTS is a list of options
  java ${JAVA_OPTS--XX:TieredStopAtLevel=1} -cp "$project/target/classes:$(cat "$project/target/classpath.txt")" \
    kstreams.differential.AssignorHarness <"$assignor/groups.jsonl" >"$1"
}

check=0
filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$filter" ] || die "one case-name substring at most"; filter="$1" ;;
  esac
  shift
done
[ "$check" = 0 ] || [ -z "$filter" ] || die "--check compares every case: it takes no case-name substring"

start=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
need_tools
build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$check" = 1 ]; then
  assign "$tmp.assignor"
  if ! diff -q "$assignor/expected.jsonl" "$tmp.assignor" >/dev/null; then
    echo "differential.sh: Kafka Streams' task assignor answers differently from streams-core/testdata/assignor/expected.jsonl (first lines of the difference below); run scripts/differential.sh to regenerate it" >&2
    diff "$assignor/expected.jsonl" "$tmp.assignor" | head -n 20 >&2 || true
    rm -f "$tmp.assignor"
    exit 1
  fi
  rm -f "$tmp.assignor"
  run "$tmp"
  mkdir -p "$expected"
  if ! diff -r "$expected" "$tmp" >"$tmp.diff" 2>&1; then
    {
      echo "differential.sh: tests/differential/expected/ differs from what Kafka Streams gives now:"
      { diff -rq "$expected" "$tmp" || true; } | sed -e "s|^Files $expected/\([^ ]*\) and .*|  changed: \1|" \
        -e "s|^Only in $expected: |  no longer produced (a removed case?): |" \
        -e "s|^Only in $tmp: |  missing from expected/: |"
      echo "the differences (first 200 lines):"
      head -n 200 "$tmp.diff"
      echo "run scripts/differential.sh to regenerate expected/, and review the changes"
    } >&2
    rm -f "$tmp.diff"
    exit 1
  fi
  rm -f "$tmp.diff"
  echo "differential.sh: expected/ matches Kafka Streams ($(find "$tmp" -name '*.json' | wc -l) cases, $(wc -l <"$assignor/groups.jsonl") assignor groups, $(elapsed))" >&2
  exit 0
fi

mkdir -p "$expected"
if [ -n "$filter" ]; then
  run "$expected" "$filter"
else
  run "$tmp"
  # Every case was written: what is in expected/ and not in the new set belongs to a removed case.
  for old in "$expected"/*.json; do
    [ -e "$old" ] || continue
    if [ ! -e "$tmp/$(basename "$old")" ]; then
      echo "differential.sh: removing $(basename "$old") (no case of that name)" >&2
      rm -f "$old"
    fi
  done
  cp "$tmp"/*.json "$expected"/
  assign "$assignor/expected.jsonl"
fi
echo "differential.sh: wrote tests/differential/expected/ in $(elapsed)" >&2
