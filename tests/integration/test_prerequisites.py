"""The metallb and nutanix_csi roles on the local cluster: install only what is missing, leave
what NKP installed alone, configure what Dify needs. The upstream charts cannot be downloaded
here: the Helm path runs against stand-in charts packaged by these tests (real helm, real
release), and MetalLB's CRDs are stand-ins with a structural schema (tests/integration/fixtures)."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import Cluster

FIXTURES = Path(__file__).parent / "fixtures"
CRDS = FIXTURES / "charts" / "metallb" / "crds"
POOLS = [{"name": "dify", "addresses": ["10.20.0.0/28", "10.20.1.10-10.20.1.19"], "auto_assign": False}]


def prerequisites(ansible, extra: dict, **kwargs):
    return ansible("prerequisites.yml", extra, **kwargs)


def package(cluster: Cluster, chart: str, tmp_path: Path) -> str:
    out = subprocess.run(
        [str(cluster.bin_dir / "helm"), "package", str(FIXTURES / "charts" / chart), "-d", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip().rsplit(" ", 1)[-1]


def managers(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> list[str]:
    args = ["get", kind, name, "-o", "json", "--show-managed-fields"] + (["-n", namespace] if namespace else [])
    obj = json.loads(cluster.kubectl(*args).stdout)
    return sorted({m["manager"] for m in obj["metadata"].get("managedFields", [])})


@pytest.fixture
def metallb_crds(cluster: Cluster):
    cluster.kubectl("apply", "--server-side", "--field-manager=dify-ce-tests", "-f", str(CRDS))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/ipaddresspools.metallb.io", "crd/l2advertisements.metallb.io"
    )


def nkp_like_metallb(cluster: Cluster, namespace: str) -> None:
    """What NKP's addon leaves: a controller and its pool "metallb", applied by another manager."""
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=nkp-addon", "-n", namespace, "-f", "-",
        input=yaml.safe_dump_all([
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "metallb-controller", "labels": {
                "app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "controller"}},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "metallb-controller"}},
                      "template": {"metadata": {"labels": {"app": "metallb-controller"}},
                                   "spec": {"containers": [{"name": "c", "image": "metallb/controller:v0.15.2"}]}}}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "metallb"},
             "spec": {"addresses": ["10.30.0.0/24"]}},
        ]),
    )  # fmt: skip


def unready_webhook(cluster: Cluster, namespace: str) -> str:
    """A pool webhook nobody serves yet, like MetalLB's right after its install (this namespace only)."""
    name = f"standin-metallb-webhook-{uuid.uuid4().hex[:6]}"
    rule = {"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["ipaddresspools"]}  # fmt: skip
    service = {"name": "metallb-webhook-service", "namespace": namespace, "path": "/validate"}
    hook = {"name": "ipaddresspoolvalidationwebhook.metallb.io", "admissionReviewVersions": ["v1"],
            "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 2, "rules": [rule],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "clientConfig": {"service": service}}  # fmt: skip
    cluster.apply({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                   "metadata": {"name": name}, "webhooks": [hook]})  # fmt: skip
    return name


def test_metallb_on_nkp_installs_nothing_and_leaves_the_foreign_pool_alone(cluster, namespace, ansible, metallb_crds):
    nkp_like_metallb(cluster, namespace)
    foreign = cluster.get("ipaddresspool", "metallb", namespace)
    run = prerequisites(
        ansible, {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_address_pools": POOLS}
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("Install MetalLB").get("skipped"), "MetalLB was found: nothing to install"
    assert cluster.get("secrets", namespace=namespace, label="owner=helm")["items"] == []
    assert (
        cluster.get("ipaddresspool", "metallb", namespace)["metadata"]["resourceVersion"]
        == foreign["metadata"]["resourceVersion"]
    )
    assert managers(cluster, "ipaddresspool", "metallb", namespace) == ["nkp-addon"]
    pool = cluster.get("ipaddresspool", "dify", namespace)
    assert pool["spec"] == {"addresses": POOLS[0]["addresses"], "autoAssign": False, "avoidBuggyIPs": False}
    assert cluster.get("l2advertisement", "dify", namespace)["spec"]["ipAddressPools"] == ["dify"]
    assert managers(cluster, "ipaddresspool", "dify", namespace) == ["dify_ce.kubernetes"]
    assert run.result("The pool for Dify")["ansible_facts"]["metallb_pool_for_dify"] == "dify"
    again = prerequisites(
        ansible, {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_address_pools": POOLS}
    )
    assert again.rc == 0 and again.changed == 0


def test_metallb_refuses_to_take_the_name_of_a_foreign_pool(cluster, namespace, ansible, metallb_crds):
    nkp_like_metallb(cluster, namespace)
    before = cluster.get("ipaddresspool", "metallb", namespace)
    clash = [{"name": "metallb", "addresses": ["10.40.0.0/28"]}]
    run = prerequisites(
        ansible, {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_address_pools": clash}
    )
    assert run.rc != 0
    message = " ".join(str(r.get("msg")) for r in run.failed_results)
    assert "metallb_address_pools names ['metallb']" in message and "nkp-addon" in message
    assert cluster.get("ipaddresspool", "metallb", namespace)["spec"] == before["spec"]


def test_metallb_installs_from_a_chart_where_missing_and_waits_out_the_webhook(
    cluster, namespace, ansible, tmp_path, metallb_crds
):
    chart = package(cluster, "metallb", tmp_path)
    webhook = unready_webhook(cluster, namespace)
    webhook_served = threading.Event()

    def serve_webhook_later() -> None:
        # The webhook "comes up" a few seconds after the controller is ready, as MetalLB's does:
        # the role's first pool attempts (right after its rollout wait) meet a webhook nobody serves.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            controller = cluster.get("deployment", "metallb-controller", namespace)
            if controller and (controller.get("status") or {}).get("readyReplicas"):
                break
            time.sleep(0.2)
        time.sleep(5)
        cluster.kubectl("delete", "validatingwebhookconfiguration", webhook, check=False)
        webhook_served.set()

    threading.Thread(target=serve_webhook_later, daemon=True).start()
    run = prerequisites(
        ansible,
        {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_address_pools": POOLS,
         "metallb_chart_ref": chart},
    )  # fmt: skip
    assert run.rc == 0, run.stdout[-3000:]
    assert webhook_served.is_set(), "the play finished before the webhook came up"
    assert run.result("Apply the address pools")["attempts"] > 1
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    releases = cluster.get("secrets", namespace=namespace, label="owner=helm,name=metallb")["items"]
    assert len(releases) == 1
    controller = cluster.get("deployments", namespace=namespace, label="app.kubernetes.io/component=controller")[
        "items"
    ][0]
    assert controller["status"]["availableReplicas"] == 1
    assert cluster.get("ipaddresspool", "dify", namespace) is not None


def test_metallb_says_when_the_webhook_never_comes(cluster, namespace, ansible, metallb_crds):
    nkp_like_metallb(cluster, namespace)
    webhook = unready_webhook(cluster, namespace)
    try:
        run = prerequisites(ansible, {"prerequisites_metallb": True, "metallb_namespace": namespace,
                                      "metallb_address_pools": POOLS, "metallb_webhook_attempts": 2})  # fmt: skip
        assert run.rc != 0
        message = run.result("The pools were accepted")["msg"]
        assert "MetalLB did not accept the address pools within 4s (its webhook was not ready)" in message
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", webhook, check=False)


@pytest.mark.parametrize(
    ("pools", "words"),
    [
        ([{"name": "dify", "addresses": ["10.0.0.300/24"]}], "is neither a CIDR"),
        (
            [{"name": "a", "addresses": ["10.0.0.0/24"]}, {"name": "b", "addresses": ["10.0.0.100-10.0.0.110"]}],
            "overlaps",
        ),
    ],
)
def test_metallb_bad_pools_fail_before_any_change(cluster, namespace, ansible, pools, words):
    run = prerequisites(
        ansible, {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_address_pools": pools}
    )
    assert run.rc != 0
    message = run.result("Check the address pools")["msg"]
    assert words in message and "metallb_address_pools" in message
    assert not run.ran("Look for MetalLB's CRDs and controller, and kube-proxy's configuration")


def test_metallb_wants_strict_arp_with_ipvs(cluster, namespace, ansible, metallb_crds):
    nkp_like_metallb(cluster, namespace)
    existing = cluster.get("configmap", "kube-proxy", "kube-system")
    if existing is not None:
        pytest.skip("the cluster has its own kube-proxy configuration")
    cluster.apply(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy"},
          "data": {"config.conf": yaml.safe_dump({"mode": "ipvs", "ipvs": {"strictARP": False}})}},
         {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy"},
          "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                   "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                "spec": {"containers": [{"name": "kube-proxy", "image": "kube-proxy:v1.34.4"}]}}}}],
        "kube-system",
    )  # fmt: skip
    try:
        extra = {"prerequisites_metallb": True, "metallb_namespace": namespace, "metallb_install": "always",
                 "metallb_address_pools": POOLS}  # fmt: skip
        refused = prerequisites(ansible, extra)
        assert refused.rc != 0
        assert (
            "metallb_kube_proxy_strict_arp"
            in refused.result("MetalLB needs kube-proxy's strictARP in IPVS mode")["msg"]
        )
        assert cluster.get("ipaddresspool", "dify", namespace) is None
    finally:
        cluster.kubectl("delete", "configmap,daemonset", "kube-proxy", "-n", "kube-system", check=False)


def csi_vars(namespace: str, **extra) -> dict:
    suffix = namespace[-5:]
    values = {
        "prerequisites_nutanix_csi": True,
        "nutanix_csi_namespace": namespace,
        "nutanix_csi_volumes_class": f"t-volumes-{suffix}",
        "nutanix_csi_volumes_container": "default-container",
        "nutanix_csi_files_class": f"t-files-{suffix}",
        "nutanix_csi_files_nfs_server": "files.example.com",
        "nutanix_csi_files_nfs_path": "/dify",
    }
    values.update(extra)
    return values


def test_nutanix_csi_installs_with_credentials_in_a_secret_and_creates_classes(cluster, namespace, ansible, tmp_path):
    chart = package(cluster, "nutanix-csi-storage", tmp_path)
    cluster.kubectl("delete", "csidriver", "csi.nutanix.com", "--ignore-not-found")  # owned by an earlier release
    password = "pc-Passw0rd-" + namespace[-5:]
    extra = csi_vars(namespace, nutanix_csi_install="always", nutanix_csi_chart_ref=chart,
                     nutanix_csi_prism_central_endpoint="pc.example.com", nutanix_csi_username="admin",
                     nutanix_csi_password=password)  # fmt: skip
    try:
        run = prerequisites(ansible, extra, verbosity=3, json_output=False)
        assert run.rc == 0, run.stdout[-3000:]
        assert password not in run.stdout + run.stderr
        assert base64.b64encode(password.encode()).decode() not in run.stdout + run.stderr
        secret = cluster.get("secret", "nutanix-csi-credentials", namespace)["data"]["key"]
        assert base64.b64decode(secret).decode() == f"pc.example.com:9440:admin:{password}"
        controller = cluster.get("deployment", "nutanix-csi-controller", namespace)
        annotations = controller["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prism-central": "pc.example.com",
            "secret": "nutanix-csi-credentials",
            "creates-secret": "false",
        }
        assert cluster.get("csidriver", "csi.nutanix.com") is not None
        volumes = cluster.get("storageclass", extra["nutanix_csi_volumes_class"])
        assert volumes["provisioner"] == "csi.nutanix.com"
        assert volumes["parameters"]["storageType"] == "NutanixVolumes"
        assert volumes["parameters"]["storageContainer"] == "default-container"
        assert volumes["parameters"]["csi.storage.k8s.io/provisioner-secret-name"] == "nutanix-csi-credentials"
        assert volumes["allowVolumeExpansion"] is True
        files = cluster.get("storageclass", extra["nutanix_csi_files_class"])
        assert files["parameters"]["storageType"] == "NutanixFiles" and files["parameters"]["nfsPath"] == "/dify"
    finally:
        cluster.kubectl("delete", "storageclass", extra["nutanix_csi_volumes_class"], extra["nutanix_csi_files_class"],
                        "--ignore-not-found")  # fmt: skip


def test_nutanix_csi_on_nkp_reuses_the_driver_and_existing_classes(cluster, namespace, ansible):
    if cluster.get("csidriver", "csi.nutanix.com") is None:
        cluster.apply({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "csi.nutanix.com"},
                       "spec": {"attachRequired": False}})  # fmt: skip
    existing = f"t-nkp-volume-{namespace[-5:]}"
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=nkp-addon", "-f", "-",
        input=yaml.safe_dump({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": existing},
                              "provisioner": "csi.nutanix.com", "parameters": {"storageType": "NutanixVolumes"}}),
    )  # fmt: skip
    extra = csi_vars(namespace, nutanix_csi_volumes_class=existing)
    try:
        before = cluster.get("storageclass", existing)["metadata"]["resourceVersion"]
        run = prerequisites(ansible, extra)
        assert run.rc == 0, run.stdout[-3000:]
        assert run.result("Install the driver").get("skipped")
        assert cluster.get("storageclass", existing)["metadata"]["resourceVersion"] == before
        assert managers(cluster, "storageclass", existing) == ["nkp-addon"]
        assert cluster.get("storageclass", extra["nutanix_csi_files_class"])["provisioner"] == "csi.nutanix.com"
        again = prerequisites(ansible, extra)
        assert again.rc == 0 and again.changed == 0
    finally:
        cluster.kubectl("delete", "storageclass", existing, extra["nutanix_csi_files_class"], "--ignore-not-found")


def test_nutanix_csi_install_without_prism_central_fails_before_any_change(cluster, namespace, ansible):
    run = prerequisites(ansible, csi_vars(namespace, nutanix_csi_install="always"))
    assert run.rc != 0
    message = run.result("Installing needs Prism Central and its credentials")["msg"]
    assert "nutanix_csi_prism_central_endpoint" in message and "Nothing was changed" in message
    assert cluster.get("secret", "nutanix-csi-credentials", namespace) is None
    assert cluster.get("storageclass", f"t-volumes-{namespace[-5:]}") is None
