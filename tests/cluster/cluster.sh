#!/usr/bin/env bash
# The local control plane: real etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler, with kwok standing in for kubelets. Started through
# `kwokctl --runtime=binary` with binaries built from Go modules (build.sh).
#
#   cluster.sh up      start (or reuse) the cluster; last line: KUBECONFIG=<path>
#   cluster.sh down    stop it and remove its state; kills only its own processes
#   cluster.sh status  exit 0 when the cluster answers
#
# Environment: DIFY_CE_CLUSTER_NAME (default dify-ce), DIFY_CE_CACHE_DIR, DIFY_CE_CLUSTER_AUDIT=1
# (write an audit log of every request, for `make bench`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${DIFY_CE_CLUSTER_NAME:-dify-ce}
cache_root=${DIFY_CE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dify-ce-kubernetes}
export KWOK_WORKDIR="$cache_root/kwok"
workdir="$KWOK_WORKDIR/clusters/$name"
kubeconfig="$cache_root/$name.kubeconfig"
# The Stages with the simulated output's place and names filled in (see stages.yaml).
stages="$cache_root/$name.stages.yaml"
simulated="$cache_root/$name.simulated-output"
config_files=("$here/config/kwokctl.yaml" "$stages")
audit_args=()
if [ "${DIFY_CE_CLUSTER_AUDIT:-}" = 1 ]; then
  config_files+=("$here/config/audit-policy.yaml")
  audit_args=(--kube-audit-policy "$here/config/audit-policy.yaml")
fi
manifests=("$here/manifests/nodes.yaml" "$here/manifests/storage-classes.yaml")

log() { echo "[cluster] $*" >&2; }

# What each Job of the collection prints when it succeeds (tests/cluster/simulated-output), in
# kwok's log format, and the Stages that serve it. Rewritten on every `up`, file by file through a
# temporary name (tests may be reading them): a changed text needs no new cluster.
render_simulation() {
  local f base names=() tmp
  mkdir -p "$simulated"
  for f in "$here"/simulated-output/*.log; do
    base=$(basename "$f" .log)
    names+=("\"$base\"")
    tmp="$simulated/.$base.$$"
    sed 's/^/2026-01-01T00:00:00.000000000Z stdout F /' "$f" >"$tmp"
    mv -f "$tmp" "$simulated/$base.log"
  done
  local list
  list=$(IFS=,; echo "${names[*]}")
  sed -e "s|@SIMULATED_OUTPUT_DIR@|$simulated|g" -e "s|@SIMULATED_CONTAINERS@|$list|g" \
    "$here/config/stages.yaml" >"$stages.$$"
  mv -f "$stages.$$" "$stages"
}

config_hash() { # what the running cluster was made from (not the tools it does not run)
  { cat "${config_files[@]}" "${manifests[@]}"; grep -E '^(K8S|KWOK|GATEWAY_API)_VERSION=' "$here/versions.env"; } |
    sha256sum | cut -c1-16
}

# The Gateway API's standard-channel CRDs, from the pinned Go module (the module cache; downloaded
# once, verified against go.sum). The ValidatingAdmissionPolicy beside them is left out.
gateway_api_crds() {
  local dir
  dir=$(cd "$here/tools/gateway-api" && GOFLAGS=-mod=readonly go mod download -json sigs.k8s.io/gateway-api |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  local f
  for f in "$dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    case "$f" in *_vap_*) ;; *) echo "$f" ;; esac
  done
}

bin_dir() { "$here/build.sh" | tail -n 1; }

healthy() {
  [ -f "$kubeconfig" ] && [ -d "$workdir" ] && all_running &&
    "$1/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# Every process kwokctl started still runs: the apiserver answering is not enough (a dead
# controller-manager or scheduler leaves a cluster where nothing starts).
all_running() {
  local f pid
  for f in "$workdir"/pids/*.pid; do
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || { log "$(basename "$f" .pid) (pid $pid) is not running"; return 1; }
  done
}

# PIDs kwokctl started for this cluster, from its pid files.
our_pids() {
  local f
  for f in "$workdir"/pids/*.pid; do
    [ -f "$f" ] && cat "$f"
  done
  return 0
}

stop_cluster() {
  local bin=$1 pids pid
  pids=$(our_pids)
  if [ -d "$workdir" ]; then
    "$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2 9>&- || true
  fi
  # kwokctl stops the processes it started; make sure, by PID and only ours.
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$bin/"; then
      log "process $pid still running after delete; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$workdir"
  rm -f "$kubeconfig" "$cache_root/$name.config-hash"
}

up() {
  local bin t0=$SECONDS
  bin=$(bin_dir)
  mkdir -p "$cache_root"
  render_simulation
  if healthy "$bin" && [ "$(cat "$cache_root/$name.config-hash" 2>/dev/null)" = "$(config_hash)" ]; then
    log "reusing running cluster $name"
    echo "KUBECONFIG=$kubeconfig"
    return 0
  fi
  if [ -d "$workdir" ] || [ -f "$kubeconfig" ]; then
    log "removing stale or outdated cluster $name"
    stop_cluster "$bin"
  fi
  mkdir -p "$cache_root"
  log "creating cluster $name"
  local args=()
  for f in "$here/config/kwokctl.yaml" "$stages"; do args+=(--config "$f"); done
  "$bin/kwokctl" "${args[@]}" create cluster --name "$name" --runtime binary \
    --kubeconfig "$kubeconfig" \
    --etcd-binary "$bin/etcd" \
    --kube-apiserver-binary "$bin/kube-apiserver" \
    --kube-controller-manager-binary "$bin/kube-controller-manager" \
    --kube-scheduler-binary "$bin/kube-scheduler" \
    --kwok-controller-binary "$bin/kwok" \
    "${audit_args[@]}" \
    --wait 120s >&2 9>&- # the daemons must not inherit (and hold) the lock
  local kc=("$bin/kubectl" --kubeconfig "$kubeconfig")
  for m in "${manifests[@]}"; do "${kc[@]}" apply --server-side -f "$m" >&2; done
  local crd crds=()
  for crd in $(gateway_api_crds); do crds+=(-f "$crd"); done
  "${kc[@]}" apply --server-side "${crds[@]}" >/dev/null
  "${kc[@]}" wait --for=condition=Established crd --all --timeout=60s >/dev/null
  "${kc[@]}" wait --for=condition=Ready node --all --timeout=60s >&2
  # kwokctl's readiness only covers the apiserver: the default ServiceAccount shows that
  # the controller-manager runs too (its serviceaccount controller creates it).
  local i
  for i in $(seq 1 120); do
    "${kc[@]}" get serviceaccount default -n default >/dev/null 2>&1 && break
    [ "$i" = 120 ] && { log "controller-manager did not start; see $workdir/logs"; return 1; }
    sleep 0.5
  done
  config_hash >"$cache_root/$name.config-hash"
  log "cluster $name ready in $((SECONDS - t0))s"
  echo "KUBECONFIG=$kubeconfig"
}

down() {
  local bin
  bin=$(bin_dir)
  stop_cluster "$bin"
  log "cluster $name stopped"
}

status() {
  local bin
  bin=$(bin_dir)
  healthy "$bin"
}

# One cluster-up/down at a time (parallel test workers, a demo and a test run).
lock() {
  mkdir -p "$cache_root"
  exec 9>"$cache_root/$name.lock"
  flock 9
}

case "${1:-}" in
  up) lock; up ;;
  down) lock; down ;;
  status) status ;;
  bin-dir) bin_dir ;;
  audit-log) echo "$workdir/logs/audit.log" ;;
  *) echo "usage: $0 up|down|status|bin-dir|audit-log" >&2; exit 2 ;;
esac
