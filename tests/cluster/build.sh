#!/usr/bin/env bash
# Build the local control plane's binaries once and cache them outside the checkout.
#
# Three groups, each cached under a key made of its pinned version, its go.sum and the Go
# version, so changing one (say the analyzer) never rebuilds the others; every clone on this
# machine (CI included) shares them. Prints, as its last line, a directory with all binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache_root=${DIFY_CE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dify-ce-kubernetes}
go_version=$(go env GOVERSION)
started=$SECONDS

key() { # key FILE... -> short hash of the files and the Go version
  (cat "$@"; echo "$go_version") | sha256sum | cut -c1-12
}

k8s_dir="$cache_root/bin/k8s-${K8S_VERSION}_$(key "$here/tools/k8s/go.sum" "$here/tools/k8s/cmd/etcd/main.go")"
kwok_dir="$cache_root/bin/kwok-${KWOK_VERSION}_$(key "$here/tools/kwok/go.sum")"
netpol_dir="$cache_root/bin/netpol-analyzer-${NETPOL_ANALYZER_VERSION}_$(key "$here/tools/netpol/go.sum")"
helm_dir="$cache_root/bin/helm-${HELM_VERSION}_$(key "$here/tools/helm/go.sum")"

build() { # build DIR NAME MODULE_DIR PACKAGE LDFLAGS
  local dir=$1 name=$2 module=$3 pkg=$4 ldflags=$5 t0=$SECONDS tmp
  [ -x "$dir/$name" ] && return 0
  mkdir -p "$dir"
  # One build per cache group at a time: a second run (another clone, CI beside a developer)
  # waits here, then finds the binary the first one built.
  exec 8>"$dir.lock"
  flock 8
  if [ -x "$dir/$name" ]; then
    exec 8>&-
    return 0
  fi
  echo "[build] $name ... (total elapsed $((SECONDS - started))s)" >&2
  # Build into a temporary name of this process, then rename: an interrupted build never leaves
  # a half-written binary that a later run would take for a cached one.
  tmp="$dir/.$name.tmp.$$"
  if ! (cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" \
    -o "$tmp" "$pkg" 8>&-); then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$dir/$name"
  exec 8>&-
  echo "[build] $name done in $((SECONDS - t0))s" >&2
}

# Kubernetes reports its version from these variables (kwokctl reads it to pick flags).
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=${K8S_VERSION%%.*}"
  k8s_ldflags+=" -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build "$k8s_dir" "$b" "$here/tools/k8s" "k8s.io/kubernetes/cmd/$b" "$k8s_ldflags"
done
build "$k8s_dir" etcd "$here/tools/k8s" ./cmd/etcd "-s -w"

kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v${KWOK_VERSION}"
build "$kwok_dir" kwok "$here/tools/kwok" sigs.k8s.io/kwok/cmd/kwok "$kwok_ldflags"
build "$kwok_dir" kwokctl "$here/tools/kwok" sigs.k8s.io/kwok/cmd/kwokctl "$kwok_ldflags"

build "$netpol_dir" k8snetpolicy "$here/tools/netpol" github.com/np-guard/netpol-analyzer/cmd/netpolicy "-s -w"

helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}"
build "$helm_dir" helm "$here/tools/helm" helm.sh/helm/v3/cmd/helm "$helm_ldflags"

# One directory with every binary (links into the group directories).
bin_dir="$cache_root/bin/set-$(echo "$k8s_dir $kwok_dir $netpol_dir $helm_dir" | sha256sum | cut -c1-12)"
if [ ! -d "$bin_dir" ]; then
  tmp="$bin_dir.tmp.$$"
  mkdir -p "$tmp"
  for f in "$k8s_dir"/* "$kwok_dir"/* "$netpol_dir"/* "$helm_dir"/*; do ln -s "$f" "$tmp/$(basename "$f")"; done
  mv -T "$tmp" "$bin_dir" 2>/dev/null || rm -rf "$tmp"
fi
[ $((SECONDS - started)) -gt 1 ] && echo "[build] all binaries ready in $((SECONDS - started))s" >&2
echo "$bin_dir"
