# Process helpers shared by the test clusters' scripts (scripts/k8s/cluster.sh, scripts/cluster/cluster.sh).
# Sourced; expects $DIR, the cluster's state directory, which every process it started names in its
# command line.

# Alive and still ours: after a reboot a recorded pid may belong to another process.
pid_alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && grep -qF "$DIR/" "/proc/$pid/cmdline" 2>/dev/null
}

# Sends SIGTERM, then SIGKILL after 10 s.
stop_pidfile() {
  local f=$1 pid i
  pid_alive "$f" || {
    rm -f "$f"
    return 0
  }
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

# The errors at the end of a component's log (klog, logfmt or JSON), for a failure message.
log_tail() { { grep -E '^[EF][0-9]{4}|level=(error|fatal)|"level":"(error|fatal|panic)"' "$1" || tail -n 5 "$1"; } | tail -n 5; }
