"""The local control plane behaves like a real cluster where this project relies on it."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import CLUSTER_SH, Cluster


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def job(name: str, annotations: dict[str, str] | None = None, container: str = "test") -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": container, "image": "busybox:1.36"}]},
            },
        },
    }


def condition(obj: dict, kind: str) -> bool:
    return any(c["type"] == kind and c["status"] == "True" for c in obj.get("status", {}).get("conditions") or [])


def test_at_least_two_nodes_are_ready(cluster: Cluster):
    nodes = cluster.get("nodes")["items"]
    ready = [n for n in nodes if condition(n, "Ready")]
    assert len(ready) >= 2
    assert len({n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in ready}) >= 2


def test_job_completes_and_failing_job_reports_exit_code(cluster: Cluster, namespace: str):
    cluster.apply([job("ok"), job("bad", {"dify-ce.test/exit-code": "3"})], namespace)
    wait_for(lambda: condition(cluster.get("job", "ok", namespace), "Complete"), what="Job ok Complete")
    wait_for(lambda: condition(cluster.get("job", "bad", namespace), "Failed"), what="Job bad Failed")
    pod = cluster.get("pods", namespace=namespace, label="job-name=bad")["items"][0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert pod["status"]["phase"] == "Failed"


def test_delay_annotation_keeps_a_job_running(cluster: Cluster, namespace: str):
    cluster.apply(job("slow", {"dify-ce.test/delay-seconds": "4"}), namespace)
    started = time.monotonic()
    wait_for(lambda: condition(cluster.get("job", "slow", namespace), "Complete"), timeout=30, what="slow Job")
    assert time.monotonic() - started >= 3.5


def test_waiting_reason_annotation(cluster: Cluster, namespace: str):
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "stuck",
                "annotations": {
                    "dify-ce.test/waiting-reason": "ImagePullBackOff",
                    "dify-ce.test/waiting-message": 'Back-off pulling image "nope:1"',
                },
            },
            "spec": {"containers": [{"name": "c", "image": "nope:1"}]},
        },
        namespace,
    )

    def waiting():
        pod = cluster.get("pod", "stuck", namespace)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return statuses and statuses[0]["state"].get("waiting")

    state = wait_for(waiting, what="waiting state")
    assert state["reason"] == "ImagePullBackOff"
    assert state["message"] == 'Back-off pulling image "nope:1"'


def job_logs(cluster: Cluster, namespace: str, name: str) -> list[str]:
    wait_for(lambda: condition(cluster.get("job", name, namespace), "Complete"), what=f"Job {name} Complete")

    def logs():
        out = cluster.kubectl("logs", "-n", namespace, f"job/{name}", check=False)
        return out.stdout if out.returncode == 0 else None

    return wait_for(logs, what="kubectl logs").splitlines()


def test_logs_come_from_the_chosen_file(cluster: Cluster, namespace: str, pod_logs):
    line = "INFO  [alembic.runtime.migration] Running upgrade 64b051264f32 -> 2a3aebbbf4bb, add foo"
    cluster.apply(job("logs", pod_logs(line + "\nsecond line")), namespace)
    assert job_logs(cluster, namespace, "logs") == [line, "second line"]


SIMULATED = Path(__file__).resolve().parents[1] / "cluster" / "simulated-output"


@pytest.mark.parametrize("container", sorted(f.stem for f in SIMULATED.glob("*.log")))
def test_every_job_of_the_collection_prints_its_simulated_output_in_any_namespace(
    cluster: Cluster, namespace: str, container: str
):
    cluster.apply(job("simulated", container=container), namespace)
    assert job_logs(cluster, namespace, "simulated") == (SIMULATED / f"{container}.log").read_text().splitlines()


def test_a_chosen_file_wins_over_the_simulated_output(cluster: Cluster, namespace: str, pod_logs):
    cluster.apply(job("chosen", pod_logs("ERROR: chosen"), container="migrate"), namespace)
    assert job_logs(cluster, namespace, "chosen") == ["ERROR: chosen"]


def test_other_containers_have_no_simulated_output(cluster: Cluster, namespace: str):
    cluster.apply(job("plain"), namespace)
    wait_for(lambda: condition(cluster.get("job", "plain", namespace), "Complete"), what="Job plain Complete")
    out = cluster.kubectl("logs", "-n", namespace, "job/plain", check=False)
    assert out.returncode != 0 and "no logs found" in out.stderr


def test_load_balancer_gets_an_address_and_pvc_binds(cluster: Cluster, namespace: str):
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "lb"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "x"}},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "fixed", "annotations": {"metallb.io/loadBalancerIPs": "192.0.2.10"}},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "x"}},
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            },
        ],
        namespace,
    )

    def ingress(name):
        return lambda: (cluster.get("service", name, namespace).get("status", {}).get("loadBalancer") or {}).get(
            "ingress"
        )

    assert wait_for(ingress("lb"), what="LB address")[0]["ip"].startswith("198.18.")
    assert wait_for(ingress("fixed"), what="fixed LB address")[0]["ip"] == "192.0.2.10"
    wait_for(lambda: cluster.get("pvc", "data", namespace)["status"].get("phase") == "Bound", what="PVC Bound")


def test_strict_field_validation_is_real(cluster: Cluster, namespace: str):
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "bad"}},
            "template": {
                "metadata": {"labels": {"app": "bad"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "imagePullPolice": "Always"}]},
            },
        },
    }
    # kubectl --validate=strict asks the apiserver for fieldValidation=Strict.
    created = cluster.kubectl(
        "create", "--validate=strict", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False
    )
    assert created.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolice"' in created.stderr
    # Server-side apply (what the roles use) always rejects undeclared fields.
    applied = cluster.apply(bad, namespace, check=False)
    assert applied.returncode != 0 and "imagePullPolice: field not declared in schema" in applied.stderr
    assert cluster.get("deployment", "bad", namespace) is None


def test_service_account_token_is_limited_to_its_role(cluster: Cluster, namespace: str):
    other = namespace[:50] + "-other"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl("create", "serviceaccount", "awx", "-n", namespace)
        cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
        cluster.kubectl(
            "create",
            "rolebinding",
            "awx-pod-reader",
            "--role=pod-reader",
            f"--serviceaccount={namespace}:awx",
            "-n",
            namespace,
        )
        token = cluster.kubectl("create", "token", "awx", "-n", namespace, "--duration=10m").stdout.strip()
        server = cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        ca = cluster.kubectl(
            "config",
            "view",
            "--minify",
            "--flatten",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ).stdout
        ca_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ca-{namespace}.crt")
        with open(ca_file, "wb") as handle:
            handle.write(base64.b64decode(ca))

        def as_awx(*args):
            return subprocess.run(
                [
                    str(cluster.bin_dir / "kubectl"),
                    f"--server={server}",
                    f"--token={token}",
                    f"--certificate-authority={ca_file}",
                    "--kubeconfig=/dev/null",
                    *args,
                ],
                capture_output=True,
                text=True,
                check=False,
            )

        allowed = wait_for(lambda: as_awx("get", "pods", "-n", namespace).returncode == 0, what="RBAC to apply")
        assert allowed
        denied = as_awx("get", "pods", "-n", other)
        assert denied.returncode != 0 and "Forbidden" in denied.stderr
        assert as_awx("get", "secrets", "-n", namespace).returncode != 0
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


@pytest.mark.slow
def test_cluster_down_stops_every_process_and_up_works_again(tmp_path):
    """A separate cluster (own name) so the shared one keeps running for other tests."""
    env = dict(os.environ, DIFY_CE_CLUSTER_NAME="dify-ce-lifecycle")
    up = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env, check=False)
    assert up.returncode == 0, up.stderr[-3000:]
    kubeconfig = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
    workdir_marker = "clusters/dify-ce-lifecycle"

    def our_processes():
        out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
        return [line for line in out.splitlines() if workdir_marker in line]

    assert our_processes(), "expected the lifecycle cluster's processes to run"
    again = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0 and "reusing running cluster" in again.stderr
    # A crash (the apiserver killed) is noticed and cleaned up by the next `up`.
    apiserver = [line.split()[0] for line in our_processes() if "kube-apiserver" in line]
    subprocess.run(["kill", "-9", *apiserver], check=True)
    recovered = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env, check=False)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert "removing stale" in recovered.stderr
    down = subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, text=True, env=env, check=False)
    assert down.returncode == 0, down.stderr[-3000:]
    wait_for(lambda: not our_processes(), timeout=15, what="processes to exit")
    assert not os.path.exists(kubeconfig)
    # idempotent down, and up after down
    assert subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, env=env, check=False).returncode == 0
    up2 = subprocess.run([str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env, check=False)
    assert up2.returncode == 0, up2.stderr[-3000:]
    assert subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, env=env, check=False).returncode == 0
    wait_for(lambda: not our_processes(), timeout=15, what="processes to exit")
