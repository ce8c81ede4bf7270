"""site.yml the way AWX runs it: ansible-runner with a private data dir, survey answers as
extra vars, and the Kubernetes credential as K8S_AUTH_* variables holding the token of a
ServiceAccount bound only to the shipped namespaced Role (rbac/namespaced.yaml)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import ansible_runner
import yaml
from cluster_fixtures import ROOT, VENV_BIN, Cluster

SURVEY_ANSWERS = {
    "dify_image_tag": "1.11.4",
    "dify_openai_api_key": "sk-awx-survey-answer-0123456789",
    "dify_loadbalancer_pool": "",
    "dify_loadbalancer_ip": "",
    "dify_api_replicas": 1,
    "dify_worker_replicas": 1,
    "dify_web_replicas": 1,
    "dify_ha": "false",
}


def prepare_namespace(cluster: Cluster, namespace: str, role: list[dict] | None = None) -> str:
    """What the platform team does once: namespace labels, the ServiceAccount and its Role."""
    cluster.kubectl(
        "label", "namespace", namespace, "--overwrite",
        "pod-security.kubernetes.io/enforce=baseline", "pod-security.kubernetes.io/audit=restricted",
    )  # fmt: skip
    docs = yaml.safe_load((ROOT / "rbac" / "namespaced.yaml").read_text())["items"]
    if role is not None:
        docs = [{**d, "rules": role} if d["kind"] == "Role" else d for d in docs]
    cluster.apply(docs, namespace)
    return cluster.kubectl("create", "token", "dify-deployer", "-n", namespace, "--duration=1h").stdout.strip()


def run_like_awx(cluster: Cluster, namespace: str, token: str, tmp_path: Path) -> ansible_runner.Runner:
    data = tmp_path / "awx"
    (data / "env").mkdir(parents=True)
    (data / "inventory").mkdir()
    (data / "project").symlink_to(ROOT)
    (data / "inventory" / "hosts").write_text(
        "localhost ansible_connection=local ansible_python_interpreter=" + str(VENV_BIN / "python") + "\n"
    )
    extra = dict(SURVEY_ANSWERS, dify_namespace=namespace, dify_cluster_scoped_access=False,
                 dify_storage_class="kwok-volume", dify_files_storage_class="kwok-files")  # fmt: skip
    (data / "env" / "extravars").write_text(json.dumps(extra))
    server = cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    ca = cluster.kubectl(
        "config", "view", "--minify", "--flatten", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}"
    ).stdout
    ca_file = tmp_path / "ca.crt"  # AWX writes the credential's CA to a file like this
    ca_file.write_bytes(base64.b64decode(ca))
    envvars = {
        "K8S_AUTH_HOST": server,
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca_file),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
    }
    (data / "env" / "envvars").write_text(json.dumps(envvars))
    return ansible_runner.run(private_data_dir=str(data), playbook="site.yml", quiet=True)


def test_site_yml_runs_from_ansible_runner_with_the_namespaced_role_only(cluster, namespace, tmp_path):
    token = prepare_namespace(cluster, namespace)
    runner = run_like_awx(cluster, namespace, token, tmp_path)
    output = runner.stdout.read()
    assert runner.status == "successful", output[-4000:]
    assert cluster.get("deployment", "dify-api", namespace)["status"]["readyReplicas"] == 1
    stored = cluster.get("secret", "dify-provider-keys", namespace)["data"]["OPENAI_API_KEY"]
    assert base64.b64decode(stored).decode() == SURVEY_ANSWERS["dify_openai_api_key"]
    assert SURVEY_ANSWERS["dify_openai_api_key"] not in output and token not in output
    # The namespace object was left alone (no cluster-scoped rights): its labels are the admin's.
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert "app.kubernetes.io/managed-by" not in labels


def test_a_role_missing_one_rule_fails_with_a_readable_forbidden(cluster, namespace, tmp_path):
    items = yaml.safe_load((ROOT / "rbac" / "namespaced.yaml").read_text())["items"]
    rules = next(d for d in items if d["kind"] == "Role")["rules"]
    without_network_policies = [
        dict(r, resources=[x for x in r["resources"] if x != "networkpolicies"])
        if "networkpolicies" in r["resources"]
        else r
        for r in rules
    ]
    token = prepare_namespace(cluster, namespace, role=without_network_policies)
    runner = run_like_awx(cluster, namespace, token, tmp_path)
    output = runner.stdout.read()
    assert runner.status == "failed"
    failure = output[output.find("fatal:") :][:3000]
    assert "forbidden" in failure.lower(), failure
    assert 'resource \\"networkpolicies\\"' in failure or 'resource "networkpolicies"' in failure, failure
    assert f"system:serviceaccount:{namespace}:dify-deployer" in failure, failure


def test_credentials_that_cannot_be_read_are_named_although_their_read_is_no_log(cluster, namespace, tmp_path):
    items = yaml.safe_load((ROOT / "rbac" / "namespaced.yaml").read_text())["items"]
    rules = next(d for d in items if d["kind"] == "Role")["rules"]
    without_secrets = [dict(r, resources=[x for x in r["resources"] if x != "secrets"]) for r in rules]
    token = prepare_namespace(cluster, namespace, role=without_secrets)
    runner = run_like_awx(cluster, namespace, token, tmp_path)
    output = runner.stdout.read()
    assert runner.status == "failed"
    failure = " ".join(output[output.find("fatal:") :][:3000].split())  # the callback folds long lines
    assert f"Nothing was changed: reading Secret dify-credentials in namespace {namespace} failed" in failure, failure
    assert "forbidden" in failure.lower() and "secrets" in failure, failure
    assert (
        cluster.get("configmaps", namespace=namespace, label="app.kubernetes.io/managed-by=dify_ce.kubernetes")["items"]
        == []
    )
