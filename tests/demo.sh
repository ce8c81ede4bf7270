#!/usr/bin/env bash
# `make demo`: start the local control plane (or reuse it), run site.yml against it with the
# local inventory, then show what was deployed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
namespace=${DIFY_NAMESPACE:-dify}

kubeconfig_line=$(tests/cluster/cluster.sh up | tail -n 1)
export KUBECONFIG=${kubeconfig_line#KUBECONFIG=}
export K8S_AUTH_KUBECONFIG=$KUBECONFIG
bin=$(tests/cluster/cluster.sh bin-dir)
kubectl=("$bin/kubectl" --kubeconfig "$KUBECONFIG")

# kwok runs no containers: choose what the migration pod "prints" (Alembic's output of a first
# migration), so that `kubectl logs job/dify-db-migration` shows something realistic.
log_file="$(dirname "$KUBECONFIG")/demo-migration.log"
sed 's/^/2026-01-01T00:00:00.000000000Z stdout F /' tests/cluster/fixtures/logs/dify-migration.log >"$log_file"
"${kubectl[@]}" apply --server-side --field-manager=dify-ce-demo -f - >/dev/null <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: demo-$namespace
spec:
  selector:
    matchNamespaces: [$namespace]
  logs:
    - containers: [migrate]
      logsFile: $log_file
YAML

.venv/bin/ansible-playbook site.yml -i inventories/local/hosts.yml -e "dify_namespace=$namespace" "$@"

echo
echo "== What runs in namespace $namespace"
"${kubectl[@]}" get deployments,statefulsets,jobs,services,pvc -n "$namespace"
echo
echo "== kubectl logs job/dify-db-migration"
"${kubectl[@]}" logs -n "$namespace" job/dify-db-migration
echo
echo "== Migration record (ConfigMap dify-db-migration)"
# shellcheck disable=SC2016 # a go-template, not shell
record_template='{{range $k, $v := .data}}{{$k}}: {{$v}}{{"\n"}}{{end}}'
"${kubectl[@]}" get configmap dify-db-migration -n "$namespace" -o go-template="$record_template"
echo
echo "Run it again (nothing changes), or upgrade: make demo ARGS='-e dify_image_tag=1.11.5'"
echo "KUBECONFIG=$KUBECONFIG"
