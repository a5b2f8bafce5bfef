#!/usr/bin/env bash
# Builds the two container images the real-node demo runs, with no network and no registry:
#
#   scripts/demo-images.sh OUT_DIR PORT
#
# - OUT_DIR/pause.tar: registry.k8s.io/pause:3.10, the pod sandbox image. containerd 1.6 runs its
#   own `sandbox_image` for every pod (its default is pause:3.6; tests/common/real/kubeadm.rs
#   sets pause:3.10, kubelet v1.33's default, which kubelet also keeps from image GC). The
#   binary is a small static C program (gcc -static) that waits for SIGTERM/SIGINT and reaps
#   children, as the upstream pause does.
# - OUT_DIR/nginx.tar: kaas-join.local/nginx:demo, one layer from this machine's nginx (Debian's
#   `nginx` package): the binary, the shared libraries `ldd` names, mime.types, and a
#   configuration that listens on 127.0.0.1:PORT (the pod uses the host's network)
#   and serves OUT_DIR's page, index.html, whose text is printed on stdout as the last line.
#
# Each tar is an OCI image layout with docker's manifest.json beside it, for
# `ctr -n k8s.io -a SOCKET images import OUT_DIR/NAME.tar`. Uncompressed layers, files owned by
# root, mtimes at 0: the same inputs give the same image.
set -euo pipefail

say() { echo "demo-images: $*" >&2; }
die() { say "$*"; exit 1; }

[ $# -eq 2 ] || die "usage: $0 OUT_DIR PORT"
out=$1
port=$2
case $port in '' | *[!0-9]*) die "PORT must be a number, not $port" ;; esac

for tool in gcc tar sha256sum ldd; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install gcc libc6-dev tar coreutils libc-bin)"
done
nginx=/usr/sbin/nginx
[ -x "$nginx" ] || die "no $nginx (Debian: apt-get install nginx)"
[ -f /etc/nginx/mime.types ] || die "no /etc/nginx/mime.types (Debian: apt-get install nginx)"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# oci_image NAME REF ROOTFS ENTRYPOINT_JSON: OUT_DIR/NAME.tar holding ROOTFS as one layer.
oci_image() {
  local name=$1 ref=$2 rootfs=$3 entrypoint=$4
  local dir="$work/$name-image"
  mkdir -p "$dir/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$dir/layer.tar" .
  local layer layer_size config config_size manifest manifest_size
  layer=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$dir/layer.tar")
  mv "$dir/layer.tar" "$dir/blobs/sha256/$layer"
  printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"kaas-join scripts/demo-images.sh"}]}' \
    "$arch" "$entrypoint" "$layer" >"$dir/config.json"
  config=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$dir/config.json")
  mv "$dir/config.json" "$dir/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$dir/manifest.oci"
  manifest=$(sha256sum "$dir/manifest.oci" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$dir/manifest.oci")
  mv "$dir/manifest.oci" "$dir/blobs/sha256/$manifest"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$arch" "$ref" "${ref##*:}" >"$dir/index.json"
  printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' \
    "$config" "$ref" "$layer" >"$dir/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$out/$name.tar" .
  say "$ref in $out/$name.tar (layer sha256:$layer, $layer_size bytes)"
}

# --- pause ---
cat >"$work/pause.c" <<'EOF'
/* The pod sandbox's process: holds the pod's namespaces until told to stop. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
EOF
mkdir -p "$work/pause-root"
gcc -static -Os -s -o "$work/pause-root/pause" "$work/pause.c" ||
  die "gcc -static failed (Debian: apt-get install gcc libc6-dev)"
oci_image pause registry.k8s.io/pause:3.10 "$work/pause-root" '["/pause"]'

# --- nginx ---
r="$work/nginx-root"
mkdir -p "$r/usr/sbin" "$r/etc/nginx" "$r/usr/share/nginx/html" "$r/tmp" "$r/var/log/nginx" "$r/run"
chmod 1777 "$r/tmp"
cp "$nginx" "$r/usr/sbin/nginx"
# Every library ldd resolves, at the path it names (symlinks followed), and the loader.
ldd "$nginx" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }' | while read -r lib; do
  mkdir -p "$r$(dirname "$lib")"
  cp -L "$lib" "$r$lib"
done
cp /etc/nginx/mime.types "$r/etc/nginx/mime.types"
# The worker processes run as nobody: getpwnam needs these (glibc reads files by default).
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
printf 'passwd: files\ngroup: files\n' >"$r/etc/nsswitch.conf"
page="kaas-join demo: nginx $("$nginx" -v 2>&1 | sed 's/.*nginx\///') in a pod on a node joined by kaas-join"
printf '%s\n' "$page" >"$r/usr/share/nginx/html/index.html"
cat >"$r/etc/nginx/nginx.conf" <<EOF
# The real-node demo: the pod uses the host's network, so it listens on loopback only.
user nobody nogroup;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root /usr/share/nginx/html;
    location / { index index.html; }
  }
}
EOF
oci_image nginx kaas-join.local/nginx:demo "$r" '["/usr/sbin/nginx","-e","stderr","-g","daemon off;"]'

echo "$page"
