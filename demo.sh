#!/usr/bin/env bash
# The main job on the embedded default, no cluster needed: start the sandbox control plane on
# loopback, mint a bootstrap token, run a real `kaas-join join` into a temporary root, show the
# report and the files it wrote, then run it again (a no-op). KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --locked --quiet -p kaas-join -p kaas-sandbox
bin="${CARGO_TARGET_DIR:-target}/debug"

work=$(mktemp -d /tmp/kaas-join-demo.XXXXXX)
sandbox_pid=
cleanup() {
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

run_join() {
  "$bin/kaas-join" join --server "$server" --token-file "$work/token" \
    --discovery-token-ca-cert-hash "$hash" --root "$work/root" --node-name demo-node-1 \
    --cri-socket unix:///run/containerd/containerd.sock --cgroup-driver systemd "$@"
}

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
