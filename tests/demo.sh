#!/usr/bin/env bash
# `make demo`: start the local control plane (or reuse it), run site.yml against it with the
# local inventory, then show what was deployed and the next step. DIFY_NAMESPACE chooses the
# namespace (default dify); arguments go to ansible-playbook.
#
# The local cluster runs no containers: what the Jobs print (the migration's Alembic lines, the
# status probe's result, ...) is simulated by the cluster itself (tests/cluster/simulated-output).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
namespace=${DIFY_NAMESPACE:-dify}

kubeconfig_line=$(tests/cluster/cluster.sh up | tail -n 1)
export KUBECONFIG=${kubeconfig_line#KUBECONFIG=}
export K8S_AUTH_KUBECONFIG=$KUBECONFIG
bin=$(tests/cluster/cluster.sh bin-dir)
kubectl=("$bin/kubectl" --kubeconfig "$KUBECONFIG")

.venv/bin/ansible-playbook site.yml -i inventories/local/hosts.yml -e "dify_namespace=$namespace" "$@"

echo
echo "== What runs in namespace $namespace"
"${kubectl[@]}" get deployments,statefulsets,jobs,services,pvc -n "$namespace"
echo
echo "== kubectl logs job/dify-db-migration (simulated by the local cluster)"
"${kubectl[@]}" logs -n "$namespace" job/dify-db-migration
echo
echo "== Migration record (ConfigMap dify-db-migration)"
# shellcheck disable=SC2016 # a go-template, not shell
record_template='{{range $k, $v := .data}}{{$k}}: {{$v}}{{"\n"}}{{end}}'
"${kubectl[@]}" get configmap dify-db-migration -n "$namespace" -o go-template="$record_template"
echo
echo "Run it again: nothing changes (changed=0). Next, the health report of this installation:"
echo "  K8S_AUTH_KUBECONFIG=$KUBECONFIG .venv/bin/ansible-playbook playbooks/status.yml -i inventories/local/hosts.yml -e dify_namespace=$namespace"
echo "KUBECONFIG=$KUBECONFIG"
