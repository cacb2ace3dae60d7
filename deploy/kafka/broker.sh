#!/usr/bin/env bash
# Fetch, start, stop and query a local single-node Apache Kafka (KRaft) broker on 127.0.0.1.
#
#   broker.sh fetch    copy the broker's jars from Maven Central into deploy/kafka/lib (once)
#   broker.sh start    start a broker unless one already answers; wait until it is ready
#   broker.sh stop     stop the broker this script started (SIGTERM, clean shutdown)
#   broker.sh status   say whether a broker answers
#   broker.sh with CMD...  run CMD with a broker; stop it afterwards only if this call started it
#
# Settings (environment): TELLUSONCE_KAFKA_PORT (9092), TELLUSONCE_KAFKA_CONTROLLER_PORT (9093),
# TELLUSONCE_KAFKA_STATE (repo/.run/kafka: data, logs, pid), TELLUSONCE_KAFKA_HEAP (512m),
# TELLUSONCE_KAFKA_EXTRA_CONFIG (a file of broker properties added last, overriding: listeners
# with SASL and an authorizer, say).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
lib="$here/lib"
port=${TELLUSONCE_KAFKA_PORT:-9092}
controller_port=${TELLUSONCE_KAFKA_CONTROLLER_PORT:-9093}
state=${TELLUSONCE_KAFKA_STATE:-$repo/.run/kafka}
heap=${TELLUSONCE_KAFKA_HEAP:-512m}
pidfile="$state/broker.pid"
started=0  # whether this call started the broker
logfile="$state/broker.log"
say() { printf 'broker: %s\n' "$*" >&2; }

fetch() {
  local wanted; wanted=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)  # refetched if the pom changes
  if [ "$(cat "$lib/.complete" 2>/dev/null)" = "$wanted" ]; then return 0; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch the broker; install it (e.g. apt-get install maven)"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is needed to run the broker; install it (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }
  say "fetching Apache Kafka jars from Maven Central into deploy/kafka/lib (first run only) ..."
  rm -rf "$lib"
  # progress: a line every 50 files Maven downloads (none when its cache has them); its errors
  mvn -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" 2>&1 \
    | awk '/Downloaded from/ { if (++n % 50 == 0) printf "broker: %d files downloaded ...\n", n > "/dev/stderr" }
           /ERROR/ { print > "/dev/stderr" }'
  echo "$wanted" >"$lib/.complete"
  say "fetched $(ls "$lib"/*.jar | wc -l) jars"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

our_pid() {  # the broker this script started, if it runs (a reused pid is not it)
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && grep -qa 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

start() {
  if answers; then say "already running on 127.0.0.1:$port"; return 0; fi
  if our_pid >/dev/null; then say "already starting (pid $(cat "$pidfile"))"; ready; return; fi
  fetch
  mkdir -p "$state"
  local data="$state/data" config="$state/server.properties"
  sed -e "s#@DATA_DIR@#$data#" -e "s#@PORT@#$port#" -e "s#@CONTROLLER_PORT@#$controller_port#" \
    "$here/server.properties" >"$config"
  if [ -n "${TELLUSONCE_KAFKA_EXTRA_CONFIG:-}" ]; then cat "$TELLUSONCE_KAFKA_EXTRA_CONFIG" >>"$config"; fi
  local cp="$lib/*"
  if [ ! -f "$data/meta.properties" ]; then
    local id; id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -Dlog4j2.configurationFile="$here/log4j2.properties" -Dtellusonce.broker.log="$state/format.log" \
      -cp "$cp" kafka.tools.StorageTool format -t "$id" -c "$config" --standalone >"$state/format.out" 2>&1 \
      || { say "formatting $data failed:"; cat "$state/format.out" >&2; exit 1; }
  fi
  : >"$logfile"
  nohup java -Xms256m "-Xmx$heap" -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Dtellusonce.broker.log="$logfile" \
    -cp "$cp" kafka.Kafka "$config" >"$state/broker.out" 2>&1 &
  echo $! >"$pidfile"
  started=1
  say "starting on 127.0.0.1:$port (pid $!, log $logfile) ..."
  ready
}

ready() {  # wait for the broker this script started to answer; stop it if it never does
  local deadline=$((SECONDS + 120))
  until grep -q 'Kafka Server started' "$logfile" 2>/dev/null && answers; do
    # alive, by its pid alone: just started, it may not be java yet (our_pid checks it is)
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then say "the broker exited; last lines of its log:"; tail -n 30 "$logfile" "$state/broker.out" >&2; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then say "not ready after 120 s; see $logfile"; stop; exit 1; fi
    sleep 0.5
  done
  say "ready on 127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid=$(our_pid); then say "not running (nothing started by this script)"; rm -f "$pidfile"; return 0; fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then say "no clean shutdown after 60 s; killing"; kill -KILL "$pid"; break; fi
    sleep 0.5
  done
  rm -f "$pidfile"
  say "stopped"
}

with() {
  if answers; then "$@"; return; fi
  trap 'if [ "$started" = 1 ]; then stop; fi' EXIT  # set before start: an interrupted start too
  start
  # CMD in a process group of its own, in the background: a SIGTERM or SIGINT here is passed
  # to all of it (make and what it runs) once, and waited for; the broker is stopped after it
  local child rc=0
  set -m
  "$@" &
  child=$!
  set +m
  trap 'kill -TERM -- "-$child" 2>/dev/null || true' TERM INT
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do  # wait was interrupted by a signal: wait on
    rc=0
    wait "$child" || rc=$?
  done
  return $rc
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then say "running on 127.0.0.1:$port"; else say "not running"; exit 1; fi ;;
  with) shift; with "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
