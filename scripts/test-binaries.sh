#!/usr/bin/env bash
# Lays out real Kubernetes binaries for the real-control-plane tests and benches in envtest's
# layout (one folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kubectl, kubeadm) and prints that folder, for KUBEBUILDER_ASSETS:
#
#   export KUBEBUILDER_ASSETS=$(scripts/test-binaries.sh [DIR])
#   cargo test --locked --test real_control_plane -- --ignored
#
# DIR (default ../shared/kubernetes beside the repository, or beside the main worktree when this
# is a `git worktree`) holds NAME.xz for each Kubernetes binary and SHA256SUMS of the unpacked
# files. They are unpacked into target/k8s-bin/ and checked against SHA256SUMS; a binary already
# there with the right checksum is kept. etcd is a symlink to the one on PATH (Debian:
# `apt-get install etcd-server`). Nothing is copied into the repository itself: target/ is
# ignored by git. About 475 MB unpacked; the first run takes about 40 s on 2 cores.
#
# Only the folder is printed on stdout; what the script does goes to stderr.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
default_src() {
  local common
  if [ -d "$repo/../shared/kubernetes" ]; then
    echo "$repo/../shared/kubernetes"
  elif common=$(git -C "$repo" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
    [ -d "$(dirname "$common")/../shared/kubernetes" ]; then
    echo "$(dirname "$common")/../shared/kubernetes"
  else
    echo "$repo/../shared/kubernetes"
  fi
}
src=${1:-$(default_src)}
out=$repo/target/k8s-bin
kube_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kubeadm)

say() { echo "test-binaries: $*" >&2; }
die() { say "$*"; exit 1; }

[ -d "$src" ] || die "no folder $src (give the folder with the .xz binaries and SHA256SUMS as argument)"
src=$(cd "$src" && pwd)
[ -f "$src/SHA256SUMS" ] || die "$src/SHA256SUMS missing"
command -v xz >/dev/null || die "xz not found (Debian: apt-get install xz-utils)"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

mkdir -p "$out"
sha() { sha256sum "$1" | cut -d' ' -f1; }
for name in "${kube_binaries[@]}"; do
  want=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$src/SHA256SUMS")
  [ -n "$want" ] || die "$src/SHA256SUMS has no line for $name"
  # Kept from an earlier run when its checksum is still right.
  if [ -x "$out/$name" ] && [ "$(sha "$out/$name")" = "$want" ]; then
    continue
  fi
  [ -f "$src/$name.xz" ] || die "$src/$name.xz missing"
  say "unpacking $name"
  # Unpacked beside its final name, checked, then renamed: an interrupted or corrupt unpack
  # never leaves a file under the name the tests run.
  xz -dc "$src/$name.xz" >"$out/.$name.part"
  got=$(sha "$out/.$name.part")
  if [ "$got" != "$want" ]; then
    rm -f "$out/.$name.part"
    die "$name: sha256 $got, SHA256SUMS says $want"
  fi
  chmod 0755 "$out/.$name.part"
  mv -f "$out/.$name.part" "$out/$name"
done

etcd=$(command -v etcd || true)
[ -n "$etcd" ] || die "etcd not found on PATH (Debian: apt-get install etcd-server; or any etcd >= 3.4)"
ln -sfn "$etcd" "$out/etcd"
say "$("$out/etcd" --version | head -n 1), $("$out/kube-apiserver" --version) in $out"

echo "$out"
