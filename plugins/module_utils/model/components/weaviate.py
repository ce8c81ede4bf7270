# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Weaviate, the vector store (the only kind so far): bundled with dify_weaviate_enabled, else the
external one at dify_weaviate_endpoint. Everything Weaviate-specific is here: what Dify's pods
are told (VECTOR_STORE and the endpoints), the StatefulSet, the check of the external endpoint,
and the upgrade's steps and the copy of its volume (Weaviate never goes back a version)."""

from __future__ import annotations

import copy
import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import pod_template
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import scripts
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    STATEFULSET,
    Component,
    Metrics,
    Port,
    Workload,
    http,
    secret_ref,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import VECTOR_STORE, Settings

KIND = "weaviate"  # Dify's VECTOR_STORE value, and the component's name
DATA_PATH = "/var/lib/weaviate"


def _weaviate(c: Component, b: Any) -> Workload:
    return c.workload(
        b,
        env=[
            {"name": "PERSISTENCE_DATA_PATH", "value": DATA_PATH},
            {"name": "QUERY_DEFAULTS_LIMIT", "value": "25"},
            {"name": "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "value": "false"},
            {"name": "DEFAULT_VECTORIZER_MODULE", "value": "none"},
            {"name": "CLUSTER_HOSTNAME", "value": "node1"},
            {"name": "AUTHENTICATION_APIKEY_ENABLED", "value": "true"},
            secret_ref("AUTHENTICATION_APIKEY_ALLOWED_KEYS", "WEAVIATE_API_KEY"),
            {"name": "AUTHENTICATION_APIKEY_USERS", "value": "dify"},
            {"name": "AUTHORIZATION_ADMINLIST_ENABLED", "value": "true"},
            {"name": "AUTHORIZATION_ADMINLIST_USERS", "value": "dify"},
            {"name": "DISABLE_TELEMETRY", "value": "true"},
        ],
        readiness=http("/v1/.well-known/ready", periodSeconds=5),
        liveness=http("/v1/.well-known/live", periodSeconds=30),
        data_path=DATA_PATH,
        data_size=b.s.weaviate_storage_size,
        pod_security={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True},
    )


def client_env(s: Settings) -> dict[str, str]:
    """What Dify's pods are told (the shared environment): the bundled one, else the external one.
    The API key is WEAVIATE_API_KEY in the credentials."""
    if s.bundled(VECTOR_STORE):
        endpoint, grpc = "http://dify-weaviate:8080", "grpc://dify-weaviate:50051"
    else:
        endpoint, grpc = s.weaviate_endpoint, s.weaviate_grpc_endpoint
    return {"VECTOR_STORE": KIND, "WEAVIATE_ENDPOINT": endpoint, "WEAVIATE_GRPC_ENDPOINT": grpc}


def checks(s: Settings) -> list[str]:
    """An external Weaviate needs its endpoint."""
    if s.vector_store != KIND or s.bundled(VECTOR_STORE) or re.match(r"^https?://", s.weaviate_endpoint or ""):
        return []
    return [
        "dify_weaviate_enabled is false, so dify_weaviate_endpoint (http(s)://host:port of the external Weaviate) "
        "is required."
    ]


def external(endpoint: str, grpc_endpoint: str, api_key: str) -> dict[str, Any]:
    """The variables of an external Weaviate (an adopted Dify's, reused)."""
    return dict(weaviate_enabled=False, weaviate_endpoint=endpoint, weaviate_grpc_endpoint=grpc_endpoint,
                weaviate_api_key=api_key)  # fmt: skip


def bundled(s: Settings) -> bool:
    """Whether Weaviate runs here (its volume, version steps and copies are ours)."""
    return KIND in s.bundled_components


def backup_wanted(s: Settings) -> bool:
    """Whether copies of the bundled Weaviate's volume are taken before its image changes."""
    return bool(bundled(s) and s.get("backup_weaviate", False))


def step(image: str, model: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
    """The Weaviate StatefulSet with another image (a step of one minor version, or the one
    running), optionally with another number of replicas."""
    sts = next(o for o in model["objects"]["data"] if o["kind"] == "StatefulSet"
               and o["metadata"]["name"] == names.workload("weaviate"))  # fmt: skip
    out = copy.deepcopy(sts)
    out["spec"]["template"]["spec"]["containers"][0]["image"] = image
    if replicas is not None:
        out["spec"]["replicas"] = replicas
    return out


def backup(b: Any, running_image: str, model: dict[str, Any]) -> dict[str, Any]:
    """Stop Weaviate, copy its volume, or start it again as it ran: the StatefulSet at the
    running image with no replica and with its own, and the copy Job's pod. The pod runs as
    Weaviate's user, with the backups volume's group (the database tools' fsGroup) as a
    supplementary one and no fsGroup of its own: the kubelet changes neither volume's owner."""
    s = b.s
    stop = step(running_image, model, replicas=0)
    tools = b.postgres_pod()
    weaviate_user = stop["spec"]["template"]["spec"]["securityContext"]
    security = {k: v for k, v in tools["spec"]["securityContext"].items() if k != "fsGroup"}
    security.update(runAsUser=weaviate_user["runAsUser"], runAsGroup=weaviate_user["runAsGroup"],
                    supplementalGroups=[tools["spec"]["securityContext"]["fsGroup"]])  # fmt: skip
    claim = names.statefulset_claim("weaviate")
    job = pod_template(
        tools,
        container_name=names.JobContainer.WEAVIATE_BACKUP,
        command=["/bin/sh", "-ec"],
        args=[scripts.WEAVIATE_BACKUP],
        env={"NAME": b.weaviate_backup_name(running_image), "KEEP": str(s.backup_keep)},
        volumes=[
            {"name": "weaviate", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
            {"name": "backups", "persistentVolumeClaim": {"claimName": names.BACKUPS_PVC}},
        ],
        volume_mounts=[
            {"name": "weaviate", "mountPath": "/weaviate", "readOnly": True},
            {"name": "backups", "mountPath": "/backups"},
        ],
        pod_security_context=security,
        pod_labels=names.labels(names.WEAVIATE_BACKUP),
        pod_annotations=s.backup_pod_annotations,
    )
    container = job["spec"]["containers"][0]
    container.pop("envFrom", None)  # it never talks to the database
    container["env"] = [e for e in container["env"] if e["name"] != "PGPASSWORD"]
    return {"stop": stop, "resume": step(running_image, model), "job": job}


WEAVIATE = Component(
    name=KIND,
    kind=STATEFULSET,
    pod=_weaviate,
    image="weaviate",
    ports=(Port("http", 8080, VECTOR_STORE), Port("grpc", 50051, VECTOR_STORE)),
    default_resources={"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    checks=checks,
    client_env=client_env,
    # Weaviate's own Prometheus endpoint (PROMETHEUS_MONITORING_ENABLED, port 2112).
    metrics=Metrics(Port("metrics", 2112), "/metrics", (("PROMETHEUS_MONITORING_ENABLED", "true"),)),
)
