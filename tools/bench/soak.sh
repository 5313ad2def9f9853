#!/usr/bin/env bash
# Soak test of a release vidrd-daemon (2 workers, tiny fixture model): for SECONDS (default 150),
# rounds of 3 clients streaming 2 clips each, 1 client killed with SIGKILL mid-stream and 1
# connection sending 300 random bytes. Prints the daemon's RSS every 30 s and, at the end, its
# counters (expect 0 sessions, 1 connection — the `info` client itself —, 0 queued bytes) and the
# client errors (expect none).
#
#   VIDRD_SCRATCH=.build bash tools/bench/soak.sh [SECONDS]
set -u
cd "$(dirname "$0")/../.."
scratch="${VIDRD_SCRATCH:-.build}"
swift build -c release --scratch-path "$scratch" --product vidrd-daemon >/dev/null
swift build -c release --scratch-path "$scratch" --product vidrd-client >/dev/null
B="$scratch/release"
port="${VIDRD_PORT:-17960}"
errors=$(mktemp)
"$B/vidrd-daemon" --model Tests/Fixtures/tiny-lpb2/model --listen "127.0.0.1:$port" --workers 2 --log-level warning 2>/tmp/vidrd-soak-daemon.log &
D=$!
sleep 1
echo "start: $(grep VmRSS /proc/$D/status)"
end=$((SECONDS + ${1:-150})); next=$((SECONDS + 30)); round=0
while [ $SECONDS -lt $end ]; do
  round=$((round + 1))
  pids=()
  for i in 1 2 3; do
    "$B/vidrd-client" stream --server "127.0.0.1:$port" --prompt "soak $i" --steps 5 --clips 2 --quiet >/dev/null 2>>"$errors" &
    pids+=($!)
  done
  "$B/vidrd-client" stream --server "127.0.0.1:$port" --prompt "killed" --steps 5 --quiet >/dev/null 2>&1 &
  victim=$!
  head -c 300 /dev/urandom | timeout 2 python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $port)); s.sendall(sys.stdin.buffer.read()); s.settimeout(2)
try: s.recv(100)
except Exception: pass" 2>/dev/null
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 $victim 2>/dev/null
  wait "${pids[@]}"
  wait $victim 2>/dev/null
  if [ $SECONDS -ge $next ]; then echo "t=${SECONDS}s: $(grep VmRSS /proc/$D/status)"; next=$((SECONDS + 30)); fi
done
sleep 1
"$B/vidrd-client" info --server "127.0.0.1:$port" | grep -E "connections|sessions|clips|queued"
echo "rounds: $round; end: $(grep -E 'VmRSS|VmHWM' /proc/$D/status | tr -s '\t\n' '  ')"
echo "client errors: $(wc -l < "$errors")"; sort "$errors" | uniq -c | head
kill -TERM $D; wait $D; echo "daemon exit status: $?"
rm -f "$errors"
