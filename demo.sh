#!/usr/bin/env bash
# The main job on the embedded default, no cluster needed: start the sandbox control plane on
# loopback, mint a bootstrap token, run a real `kaas-join join` into a temporary root, show the
# report and the files it wrote, then run it again (a no-op). Then `kaas-join run` supervises a
# stand-in kubelet (fake-kubelet) and reports the node's health: `kaas-join status`, the Node's
# conditions as the API server has them when kubelet is killed and restarted, and a clean stop.
# KEEP=1 keeps the temporary folder.
#
# `./demo.sh --real`: the seed's demo for real instead (tests/real_node.rs): a real control plane
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), `kaas-join run` joining and
# supervising the real kubelet against a real containerd, and an nginx Deployment scheduled onto
# the joined node serving its page; then kubelet killed and restarted under `run`. Needs root,
# containerd, runc, gcc, nginx, etcd and the Kubernetes binaries (scripts/test-binaries.sh);
# says what is missing otherwise.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = --real ]; then
  missing=()
  [ "$(id -u)" = 0 ] || missing+=("root")
  for tool in containerd ctr runc unshare nsenter gcc etcd xz; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ -x /usr/sbin/nginx ] || missing+=("nginx")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "demo --real: missing ${missing[*]}" >&2
    echo "  Debian: apt-get install containerd runc gcc libc6-dev nginx etcd-server xz-utils util-linux (as root)" >&2
    exit 1
  fi
  if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
    KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh) || {
      echo "demo --real: no Kubernetes binaries; see README, \"Tests against a real control plane\"" >&2
      exit 1
    }
  fi
  export KUBEBUILDER_ASSETS KAAS_REAL_NODE_REQUIRED=1
  exec cargo test --locked --test real_node -- --ignored --nocapture --test-threads=1
fi
cargo build --locked --quiet -p kaas-join -p kaas-sandbox
bin="${CARGO_TARGET_DIR:-target}/debug"

work=$(mktemp -d /tmp/kaas-join-demo.XXXXXX)
sandbox_pid=
run_pid=
runtime_pid=
cleanup() {
  # kaas-join run first: it stops its kubelet (which would die with it anyway: PDEATHSIG).
  # (`|| true`: a process ended by the signal makes `wait` fail, which must not end this trap.)
  [ -n "$run_pid" ] && kill "$run_pid" 2>/dev/null && { wait "$run_pid" 2>/dev/null || true; }
  [ -n "$runtime_pid" ] && kill "$runtime_pid" 2>/dev/null && { wait "$runtime_pid" 2>/dev/null || true; }
  [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null && wait "$sandbox_pid" 2>/dev/null
  if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin/kaas-sandbox" serve --listen 127.0.0.1:0 --state-dir "$work/sandbox" \
  >"$work/join.json" 2>"$work/sandbox.log" &
sandbox_pid=$!
for _ in $(seq 100); do [ -s "$work/join.json" ] && break; sleep 0.1; done
[ -s "$work/join.json" ] || { echo "the sandbox did not start:"; cat "$work/sandbox.log"; exit 1; }

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$work/join.json"; }
server=$(field server)
hash=$(field caCertHash)
install -m 600 /dev/null "$work/token"
field token >"$work/token"
echo "== sandbox control plane at $server (CA pin $hash), token id $(cut -c1-6 "$work/token")"

# kubelet's healthz port, in a config file shared by `join` (it goes into config.yaml) and `run`
# (the fake kubelet serves it there): the first from 10299 on that nobody listens on (not 10248,
# which a real kubelet on this machine may hold).
healthz_port=10299
while (: </dev/tcp/127.0.0.1/$healthz_port) 2>/dev/null && [ $healthz_port -lt 10399 ]; do
  healthz_port=$((healthz_port + 1))
done
printf '%s\n' "apiVersion: kaas-join.io/v1alpha1" "kind: JoinConfiguration" \
  "kubelet: {healthzPort: $healthz_port}" >"$work/config.yaml"

# join and run take the same flags. The temporary root has no kubelet binary and no container
# runtime yet: the preflight checks that find that are named as ignored (they still show).
flags=(--server "$server" --token-file "$work/token" --discovery-token-ca-cert-hash "$hash"
  --root "$work/root" --node-name demo-node-1 --config "$work/config.yaml"
  --cri-socket unix:///run/containerd/containerd.sock --cgroup-driver systemd
  --ignore-preflight-errors=FileExisting-kubelet,CRI)
run_join() { "$bin/kaas-join" join "${flags[@]}" "$@"; }

echo "== kaas-join preflight: this machine and the control plane's side, before anything is written"
"$bin/kaas-join" preflight --server "$server" --token-file "$work/token" \
  --discovery-token-ca-cert-hash "$hash" --root "$work/root" --config "$work/config.yaml" \
  --cri-socket unix:///run/containerd/containerd.sock --cgroup-driver systemd \
  --ignore-preflight-errors=FileExisting-kubelet,CRI
echo
echo "== kaas-join join --root $work/root"
run_join
echo
echo "== files written (mode, path)"
(cd "$work/root" && find . -mindepth 1 \( -type f -o -type l \) -printf '%m %p %l\n' | sort -k2)
for f in var/lib/kubelet/kubeadm-flags.env etc/kubernetes/kubelet.conf var/lib/kaas-join/state.json; do
  echo "--- /$f"
  sed 's/\(certificate-authority-data: \).\{40\}.*/\1<base64 CA, cut>/' "$work/root/$f"
done
echo "--- /var/lib/kubelet/config.yaml (first lines)"
head -n 12 "$work/root/var/lib/kubelet/config.yaml"
echo
echo "== the same command again"
run_join

echo
echo "== kaas-join run: supervise kubelet (fake-kubelet, healthz on port $healthz_port), report health"
# Stand-ins for what this machine lacks. A container runtime: a listening socket where
# containerd's would be (the health reporter connects to it), when python3 can provide one. A
# kubelet that registers its Node: the demo POSTs it with the node's own identity, as kubelet's
# registration does.
ca="$work/root/etc/kubernetes/pki/ca.crt"
cert="$work/root/var/lib/kubelet/pki/kubelet-client-current.pem"
sock="$work/root/run/containerd/containerd.sock"
mkdir -p "$(dirname "$sock")"
if command -v python3 >/dev/null; then
  python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(64); time.sleep(600)' "$sock" &
  runtime_pid=$!
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
else
  echo "(no python3: no stand-in runtime socket, so ContainerRuntimeUnreachable will be True)"
fi
have_curl=
if command -v curl >/dev/null; then
  have_curl=1
  api() { curl -sS --max-time 5 --cacert "$ca" --cert "$cert" "$@"; }
  api -X POST -H 'Content-Type: application/json' "$server/api/v1/nodes" \
    -d '{"apiVersion":"v1","kind":"Node","metadata":{"name":"demo-node-1"}}' >/dev/null
  echo "(Node demo-node-1 created by system:node:demo-node-1, as kubelet registers it)"
else
  echo "(no curl: the Node is not created and not shown; kaas-join reports through Events then)"
fi

FAKE_KUBELET_HEALTHZ="127.0.0.1:$healthz_port" "$bin/kaas-join" run "${flags[@]}" \
  --kubelet "$bin/fake-kubelet" --heartbeat 2s -v 2>"$work/run.log" &
run_pid=$!
run_status="$work/root/run/kaas-join/status.json"
# kubelet's fields are the ones indented by four spaces in the pretty-printed status file.
kubelet_field() {
  sed -n "s/^    \"$1\": \"*\([^\",]*\)\"*,*\$/\1/p" "$run_status" 2>/dev/null | head -n 1
}
wait_kubelet_running() { # [a pid it must not be]
  for _ in $(seq 200); do
    if [ "$(kubelet_field phase)" = running ] && [ "$(kubelet_field pid)" != "${1:-}" ]; then
      return 0
    fi
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "kubelet did not get to Running within 20 s; the run's log:"
  cat "$work/run.log"
  exit 1
}
show_status() {
  local code=0
  "$bin/kaas-join" status --root "$work/root" || code=$?
  echo "(exit code $code)"
}
# Our conditions on the Node as the API server has them, one line each: type, status, reason.
our_types='KubeletUnhealthy|ContainerRuntimeUnreachable|ClientCertificateExpiring|ClockSkew|LowDiskSpace|LowMemory'
show_conditions() {
  [ -n "$have_curl" ] || return 0
  api "$server/api/v1/nodes/demo-node-1" | tr -d '\n' | grep -o '{[^{}]*"type": *"[A-Za-z]*"[^{}]*}' |
    grep -E "\"type\": *\"($our_types)\"" | while read -r c; do
      f() { printf '%s' "$c" | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p"; }
      printf '  %-28s %-6s %s\n' "$(f type)" "$(f status)" "$(f reason)"
    done || true # (none yet: nothing to show)
}
# Waits (up to 5 s) for KubeletUnhealthy to have status $1; the conditions seen are in $seen.
seen=
wait_condition() {
  [ -n "$have_curl" ] || return 0
  for _ in $(seq 50); do
    seen=$(show_conditions)
    grep -Eq "KubeletUnhealthy +$1 " <<<"$seen" && return 0
    sleep 0.1
  done
  echo "(KubeletUnhealthy did not turn $1 within 5 s)"
}

wait_kubelet_running
pid=$(kubelet_field pid)
wait_condition False
echo "--- kaas-join status --root $work/root"
show_status
echo "--- our conditions on the Node (GET /api/v1/nodes/demo-node-1 as the node)"
show_conditions

echo
echo "== kill -9 the kubelet (pid $pid)"
kill -9 "$pid"
wait_condition True
echo "--- our conditions on the Node, a moment later"
[ -z "$seen" ] || echo "$seen"
echo "--- kaas-join status"
show_status
wait_kubelet_running "$pid"
wait_condition False
echo "--- after kaas-join restarted it (backoff 1 s): kubelet pid $(kubelet_field pid)"
show_conditions
show_status

echo
echo "== SIGTERM to kaas-join run (pid $run_pid)"
last_kubelet=$(kubelet_field pid)
kill -TERM "$run_pid"
for _ in $(seq 150); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$run_pid" 2>/dev/null; then
  echo "kaas-join run did not exit within 15 s of SIGTERM"
  exit 1
fi
code=0
wait "$run_pid" || code=$?
run_pid=
gone=yes
kill -0 "$last_kubelet" 2>/dev/null && gone=no
echo "kaas-join run exited with code $code; kubelet $last_kubelet gone: $gone"
show_status
if [ -n "$have_curl" ]; then
  echo "--- our conditions on the Node: the stop was reported before exiting"
  show_conditions
fi
echo "--- the run's log (last lines)"
tail -n 4 "$work/run.log"

echo
echo "== kaas-join reset --force --root $work/root (no --kubeconfig: the Node object stays)"
"$bin/kaas-join" reset --force --root "$work/root"
echo "--- files left under the root"
(cd "$work/root" && find . -mindepth 1 \( -type f -o -type l \) -printf '%m %p\n' | sort -k2)
echo "--- reset again: nothing to reset"
code=0
"$bin/kaas-join" reset --force --root "$work/root" || code=$?
echo "(exit code $code)"
[ "$code" = 20 ] || { echo "a second reset should exit 20"; exit 1; }
