# Shared by scripts/demo.sh and scripts/viewer.sh (sourced, not run): build release products,
# start vidrd-daemon in the background, wait until it answers. Callers set `scratch` and `port`,
# and install their own EXIT trap between launch_daemon and wait_for_daemon.

# build_release PRODUCT...: release builds into $scratch; sets `bin`.
build_release() {
  for product in "$@"; do swift build -c release --scratch-path "$scratch" --product "$product"; done
  bin="$scratch/release"
}

# launch_daemon: vidrd-daemon on 127.0.0.1:$port ($VIDRD_MODEL when set, else its default model),
# log in out/daemon.log; sets `daemon` to its pid.
launch_daemon() {
  local model_args=()
  if [ -n "${VIDRD_MODEL:-}" ]; then model_args=(--model "$VIDRD_MODEL"); fi
  mkdir -p out
  "$bin/vidrd-daemon" --listen "127.0.0.1:$port" "${model_args[@]}" 2> out/daemon.log &
  daemon=$!
}

# wait_for_daemon LABEL: bounded wait (60 s) until the daemon answers INFO; exits 1 with its log
# if it died.
wait_for_daemon() {
  for _ in $(seq 1 120); do
    if "$bin/vidrd-client" info --server "127.0.0.1:$port" > /dev/null 2>&1; then return 0; fi
    if ! kill -0 "$daemon" 2>/dev/null; then echo "$1: the daemon exited; see out/daemon.log" >&2; cat out/daemon.log >&2; exit 1; fi
    sleep 0.5
  done
  echo "$1: the daemon did not answer within 60 s; see out/daemon.log" >&2
  exit 1
}
