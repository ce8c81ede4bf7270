#!/usr/bin/env bash
# Build the local control plane's binaries once and cache them outside the checkout.
#
# The cache is keyed by the pinned versions, the go.sum files and the Go version, so
# every clone on this machine (CI included) reuses one build. Prints the bin directory
# as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${DIFY_CE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dify-ce-kubernetes}
key_hash=$( (cat "$here/versions.env" "$here"/tools/*/go.sum "$here"/tools/k8s/cmd/etcd/main.go; go env GOVERSION) |
  sha256sum | cut -c1-12)
bin_dir="$cache_root/bin/k8s-${K8S_VERSION}_kwok-${KWOK_VERSION}_${key_hash}"

k8s_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
all_binaries=("${k8s_binaries[@]}" etcd kwok kwokctl)

missing=()
for b in "${all_binaries[@]}"; do
  [ -x "$bin_dir/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$bin_dir"
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=${K8S_VERSION%%.*}"
  k8s_ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v${KWOK_VERSION}"

started=$SECONDS
build() { # build NAME MODULE_DIR PACKAGE LDFLAGS
  local name=$1 dir=$2 pkg=$3 ldflags=$4 t0=$SECONDS
  [ -x "$bin_dir/$name" ] && return 0
  echo "[build] $name ... (total elapsed $((SECONDS - started))s)" >&2
  # Build into a temporary name, then rename: an interrupted build never leaves a
  # half-written binary that a later run would take for a cached one.
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" \
    -o "$bin_dir/.$name.tmp" "$pkg")
  mv "$bin_dir/.$name.tmp" "$bin_dir/$name"
  echo "[build] $name done in $((SECONDS - t0))s" >&2
}

for b in "${k8s_binaries[@]}"; do
  build "$b" "$here/tools/k8s" "k8s.io/kubernetes/cmd/$b" "$k8s_ldflags"
done
build etcd "$here/tools/k8s" ./cmd/etcd "-s -w"
build kwok "$here/tools/kwok" sigs.k8s.io/kwok/cmd/kwok "$kwok_ldflags"
build kwokctl "$here/tools/kwok" sigs.k8s.io/kwok/cmd/kwokctl "$kwok_ldflags"
echo "[build] all binaries built in $((SECONDS - started))s into $bin_dir" >&2
echo "$bin_dir"
