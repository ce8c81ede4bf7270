# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every object of an installation, built from the settings, the facts read once, the decided
credentials and the release. One function per kind; the workloads are described as data first
(``Workload``) and rendered by the same function each, so a setting reaches every pod alike.

The api pod is built once (``api_pod``): the api, worker and beat Deployments and every Job that
runs the api image (migration, status probe, provider setup) start from it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import pod_template
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import configs, scripts
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.catalog import Release
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.credentials import (
    Credentials,
    provider_setup_enabled,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.inputs import replicas
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# Requests and limits per component; dify_resources is merged over these. "migration" has none of
# its own: the migration Job runs with the api's unless dify_resources sets one.
DEFAULT_RESOURCES: dict[str, dict[str, Any]] = {
    "api": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "worker": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "beat": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    "web": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "sandbox": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "plugin_daemon": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "ssrf_proxy": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "nginx": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "postgres": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "redis": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    "weaviate": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "tools": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "agent_backend": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "agent_local_sandbox": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
}

PROBE_DEFAULTS = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
# Meets the restricted Pod Security Standard.
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": RUNTIME_DEFAULT,
}
# The images' own users: api/worker/beat/web run as dify (1001, since Dify 1.10.1), nginx-unprivileged
# as 101, postgres (alpine) as 70, redis (alpine) as 999, weaviate as 1000.
DIFY_USER = {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001, "runAsNonRoot": True}
DATA_SERVICES = ("postgres", "redis", "weaviate")
# The api's own variables (Dify's compose sets them on the api only): what Dify shows for remote
# plugin debugging, the plugin daemon's debug port (kubectl port-forward svc/dify-plugin-daemon 5003).
API_ONLY_ENV = [
    {"name": "PLUGIN_REMOTE_INSTALL_HOST", "value": "localhost"},
    {"name": "PLUGIN_REMOTE_INSTALL_PORT", "value": "5003"},
]
AUTOSCALABLE = ("api", "worker", "web", "sandbox")
PROVIDER_SETUP_SCRIPT_FILE = "configure_providers.py"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge of dicts (``combine(recursive=True)``)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _probe(probe: dict[str, Any]) -> dict[str, Any]:
    return dict(PROBE_DEFAULTS, **probe)


def _http(path: str, port: str = "http", **extra: Any) -> dict[str, Any]:
    return dict({"httpGet": {"path": path, "port": port}}, **extra)


def _shell(command: str, **extra: Any) -> dict[str, Any]:
    return dict({"exec": {"command": ["/bin/sh", "-c", command]}}, **extra)


def _secret_ref(var: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": names.CREDENTIALS, "key": key}}}


@dataclass
class Workload:
    """A Deployment or StatefulSet as data: what differs between components."""

    name: str
    image: str
    resources: str = ""  # key of the resource table; default the name with _ for -
    replicas: int = 1
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[dict[str, Any]] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    service_ports: list[dict[str, Any]] = field(default_factory=list)
    readiness: dict[str, Any] | None = None
    liveness: dict[str, Any] | None = None
    startup: dict[str, Any] | None = None
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    pod_security: dict[str, Any] = field(default_factory=dict)
    security: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(RESTRICTED))
    strategy: dict[str, Any] = field(
        default_factory=lambda: {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    )
    # StatefulSets: the volume claim template "data".
    data_path: str = ""
    data_size: str = ""

    @property
    def resources_key(self) -> str:
        return self.resources or self.name.replace("-", "_")


def _name_part(tag: str) -> str:
    """A tag as one part of a copy's name: parts are separated by "_", which a tag may contain."""
    return tag.replace("_", "-") or "none"


class Builder:
    """Builds the objects of one installation."""

    def __init__(
        self,
        s: Settings,
        images: dict[str, str],
        credentials: Credentials,
        assets: dict[str, str] | None = None,
        previous_tag: str = "",
        release: Release | None = None,
        stamp: str = "",
    ) -> None:
        self.s = s
        self.previous_tag = previous_tag
        # When this run takes its copies (UTC, YYYYmmddTHHMMSSZ): part of the names it gives them.
        self.stamp = stamp
        self.release = release or Release(version=s.image_tag, line="", images=images)
        self.images = images
        self.creds = credentials
        self.assets = assets or {}
        self.namespace = s.namespace
        self.replicas = replicas(s)
        self.autoscaled = list(AUTOSCALABLE) if s.autoscaling else []
        self.resources = _merge(DEFAULT_RESOURCES, s.resources)
        self.public_url = s.public_url.rstrip("/")
        # Where users reach Dify, for the URLs Dify hands out to be called from outside (webhook
        # triggers, plugin endpoints): the public URL, else the Ingress host, else the fixed
        # LoadBalancer address, else what Dify's compose defaults to (http://localhost).
        if self.public_url:
            self.external_url = self.public_url
        elif s.expose == "ingress" and s.ingress_host:
            self.external_url = ("https://" if s.ingress_tls_secret else "http://") + s.ingress_host
        elif s.expose == "loadbalancer" and s.loadbalancer_ip:
            self.external_url = f"http://{s.loadbalancer_ip}"
        else:
            self.external_url = "http://localhost"
        self.db_host = names.workload("postgres") if s.postgres_enabled else s.db_host
        self.redis_host = names.workload("redis") if s.redis_enabled else s.redis_host
        self.provider_setup = provider_setup_enabled(s)
        self.secret_env = credentials.secret_env(s, self.redis_host)

    # ------------------------------------------------------------------ names of copies
    @property
    def backup_name(self) -> str:
        """The backup of this run's upgrade: dify_<from>_to_<to>_<time>, decided here and recorded
        by the role, so that what is recorded is exactly what the Job wrote."""
        return f"dify_{_name_part(self.previous_tag)}_to_{_name_part(self.s.image_tag)}_{self.stamp}"

    def weaviate_backup_name(self, running_image: str) -> str:
        return f"weaviate_{_name_part(running_image.rsplit(':', 1)[-1])}_{self.stamp}"

    # ------------------------------------------------------------------ metadata
    def meta(self, name: str, component: str, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if namespaced:
            out["namespace"] = self.namespace
        out["labels"] = names.labels(component)
        out.update(extra)
        return out

    # ------------------------------------------------------------------ configuration
    def shared_env(self) -> dict[str, str]:
        """The environment of api, worker, beat, the Jobs of the api image and the plugin daemon
        (Dify's compose shares it through the x-shared-env anchor): the ConfigMap dify-shared-env.
        Secret values live in the Secret dify-credentials, next to it in envFrom."""
        s, url = self.s, self.public_url
        weaviate = "http://dify-weaviate:8080" if s.weaviate_enabled else s.weaviate_endpoint
        weaviate_grpc = "grpc://dify-weaviate:50051" if s.weaviate_enabled else s.weaviate_grpc_endpoint
        env = {
            "MIGRATION_ENABLED": "false",
            "LOG_LEVEL": "INFO",
            "CONSOLE_API_URL": url,
            "CONSOLE_WEB_URL": url,
            "SERVICE_API_URL": url,
            "APP_API_URL": url,
            "APP_WEB_URL": url,
            "FILES_URL": url,
            "TRIGGER_URL": self.external_url,
            "INTERNAL_FILES_URL": "http://dify-api:5001",
            "DB_TYPE": "postgresql",
            "DB_USERNAME": s.db_username,
            "DB_HOST": self.db_host,
            "DB_PORT": str(s.db_port),
            "DB_DATABASE": s.db_database,
            "DB_PLUGIN_DATABASE": s.db_plugin_database,
            "REDIS_HOST": self.redis_host,
            "REDIS_PORT": str(s.redis_port),
            "REDIS_USERNAME": "",
            "REDIS_USE_SSL": str(s.redis_use_ssl).lower(),
            "REDIS_DB": "0",
            "CELERY_BACKEND": "redis",
            "BROKER_USE_SSL": str(s.redis_use_ssl).lower(),
            "VECTOR_STORE": "weaviate",
            "WEAVIATE_ENDPOINT": weaviate,
            "WEAVIATE_GRPC_ENDPOINT": weaviate_grpc,
            "CODE_EXECUTION_ENDPOINT": "http://dify-sandbox:8194",
            "SSRF_PROXY_HTTP_URL": "http://dify-ssrf-proxy:3128",
            "SSRF_PROXY_HTTPS_URL": "http://dify-ssrf-proxy:3128",
            "PLUGIN_DAEMON_URL": "http://dify-plugin-daemon:5002",
            "PLUGIN_DIFY_INNER_API_URL": "http://dify-api:5001",
            "PLUGIN_MAX_PACKAGE_SIZE": "52428800",
            "ENDPOINT_URL_TEMPLATE": self.external_url + "/e/{hook_id}",
            # Dify's compose values (the api entrypoint would fall back to 200 s and one worker).
            "GUNICORN_TIMEOUT": "360",
            "CELERY_WORKER_AMOUNT": "4",
            "MARKETPLACE_ENABLED": str(s.marketplace_enabled).lower(),
            "MARKETPLACE_API_URL": "https://marketplace.dify.ai",
        }
        if s.files_storage == "pvc":
            env.update(STORAGE_TYPE="opendal", OPENDAL_SCHEME="fs", OPENDAL_FS_ROOT="storage")
        else:
            env.update(
                STORAGE_TYPE="s3",
                S3_ENDPOINT=s.s3_endpoint,
                S3_BUCKET_NAME=s.s3_bucket,
                S3_REGION=s.s3_region,
                S3_USE_AWS_MANAGED_IAM=str(s.s3_use_aws_managed_iam).lower(),
            )
        if self.release.has("agent-backend"):
            env["AGENT_BACKEND_BASE_URL"] = "http://dify-agent-backend:5050"
        if self.release.has("api-websocket"):
            env["ENABLE_COLLABORATION_MODE"] = "true"
        env.update({k: str(v) for k, v in s.extra_env.items()})
        return env

    def config_maps(self) -> list[dict[str, Any]]:
        out = [
            self.config_map(names.SHARED_ENV, "config", self.shared_env()),
            self.config_map(
                names.NGINX_CONFIG,
                "nginx",
                {"nginx.conf": configs.nginx_conf(self.s, self.release.has("api-websocket"))},
            ),
            self.config_map(names.SSRF_PROXY_CONFIG, "ssrf-proxy", {"squid.conf": configs.squid_conf(self.s)}),
        ]
        if self.release.has("agent-ssrf-proxy"):
            out.append(
                self.config_map(names.AGENT_SSRF_PROXY_CONFIG, "agent-ssrf-proxy",
                                {"squid.conf": configs.agent_squid_conf(self.s)})
            )  # fmt: skip
        if self.s.postgres_enabled:
            # Runs once, when the data volume is initialised: the plugin daemon's own database.
            sql = f'CREATE DATABASE "{self.s.db_plugin_database}";\n'
            out.append(self.config_map(names.POSTGRES_INIT, "postgres", {"10-plugin-database.sql": sql}))
        if self.provider_setup:
            script = self.assets[PROVIDER_SETUP_SCRIPT_FILE]
            out.append(
                self.config_map(
                    names.PROVIDER_SETUP_SCRIPT, "provider-setup-script", {PROVIDER_SETUP_SCRIPT_FILE: script}
                )
            )
        return out

    def config_map(self, name: str, component: str, data: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": self.meta(name, component), "data": data}

    def secrets(self) -> list[dict[str, Any]]:
        """The credentials. Keys Dify's components must share are written from the same value."""
        import base64

        def encode(data: dict[str, str]) -> dict[str, str]:
            return {k: base64.b64encode(str(v).encode()).decode() for k, v in sorted(data.items())}

        out = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": self.meta(names.CREDENTIALS, "credentials"),
                "type": "Opaque",
                "data": encode(self.secret_env),
            }
        ]
        if self.creds.provider.get("OPENAI_API_KEY"):
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": self.meta(names.PROVIDER_KEYS, "provider-keys"),
                    "type": "Opaque",
                    "data": encode(self.creds.provider),
                }
            )
        return out

    def namespace_object(self) -> dict[str, Any]:
        # Pod Security admission: enforce the documented level, record what "restricted" would refuse.
        labels = dict(
            names.common_labels(),
            **{
                "pod-security.kubernetes.io/enforce": self.s.pod_security_level,
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/audit-version": "latest",
            },
        )
        labels.update(self.s.namespace_labels)
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace, "labels": labels}}

    def volume_claims(self) -> list[dict[str, Any]]:
        """Volumes of Deployments (StatefulSets bring their own claim templates). Never deleted by
        uninstall unless dify_purge_data is set."""
        s = self.s
        out = []
        if s.files_storage == "pvc":
            out.append(self.claim(names.FILES_PVC, "files", s.files_access_mode, s.files_storage_class,
                                  s.files_storage_size))  # fmt: skip
        out.append(
            self.claim(names.PLUGIN_PVC, "plugin-daemon", "ReadWriteOnce", s.storage_class, s.plugin_storage_size)
        )
        if s.backup_enabled or self.weaviate_backup_wanted:
            out.append(
                self.claim(names.BACKUPS_PVC, "backups", "ReadWriteOnce", s.storage_class, s.backup_storage_size)
            )
        if self.release.has("agent-local-sandbox") and self.release.agent_volumes:
            for claim in (names.AGENT_HOME_PVC, names.AGENT_WORKSPACE_PVC):
                out.append(self.claim(claim, "agent-local-sandbox", "ReadWriteOnce", s.storage_class,
                                      s.agent_storage_size))  # fmt: skip
        return out

    def claim(self, name: str, component: str, mode: str, storage_class: str, size: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"accessModes": [mode]}
        if storage_class:
            spec["storageClassName"] = storage_class
        spec["resources"] = {"requests": {"storage": size}}
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": self.meta(name, component),
                "spec": spec}  # fmt: skip

    # ------------------------------------------------------------------ pods
    def pod_spec(self, pod_security: dict[str, Any], containers: list[dict[str, Any]],
                 volumes: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        s = self.s
        spec: dict[str, Any] = {
            "automountServiceAccountToken": False,
            # No *_SERVICE_HOST/*_PORT variables: names like DIFY_API_PORT would clash with Dify's own.
            "enableServiceLinks": False,
            "securityContext": dict(pod_security, seccompProfile=dict(RUNTIME_DEFAULT)),
        }
        if s.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": n} for n in s.image_pull_secrets]
        if s.node_selector:
            spec["nodeSelector"] = dict(s.node_selector)
        if s.tolerations:
            spec["tolerations"] = copy.deepcopy(s.tolerations)
        spec["containers"] = containers
        if volumes:
            spec["volumes"] = volumes
        return spec

    def container(self, w: Workload) -> dict[str, Any]:
        c: dict[str, Any] = {"name": w.name, "image": w.image, "imagePullPolicy": self.s.image_pull_policy}
        if w.command is not None:
            c["command"] = list(w.command)
        if w.args is not None:
            c["args"] = list(w.args)
        if w.env:
            c["env"] = copy.deepcopy(w.env)
        if w.env_from:
            c["envFrom"] = copy.deepcopy(w.env_from)
        if w.ports:
            c["ports"] = [dict(p, protocol="TCP") for p in w.ports]
        for key, probe in (("readinessProbe", w.readiness), ("livenessProbe", w.liveness),
                           ("startupProbe", w.startup)):  # fmt: skip
            if probe is not None:
                c[key] = _probe(probe)
        c["resources"] = copy.deepcopy(self.resources[w.resources_key])
        c["securityContext"] = copy.deepcopy(w.security)
        mounts = list(w.mounts)
        if w.data_path:
            mounts = [{"name": "data", "mountPath": w.data_path}, *mounts]
        if mounts:
            c["volumeMounts"] = copy.deepcopy(mounts)
        return c

    def files_volume(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The files volume of api and worker (none with object storage)."""
        if self.s.files_storage != "pvc":
            return [], []
        return (
            [{"name": "files", "persistentVolumeClaim": {"claimName": names.FILES_PVC}}],
            [{"name": "files", "mountPath": "/app/api/storage"}],
        )

    def app_env_from(self) -> list[dict[str, Any]]:
        """envFrom of every container that runs Dify's api image."""
        return [{"configMapRef": {"name": names.SHARED_ENV}}, {"secretRef": {"name": names.CREDENTIALS}}]

    def api_workload(self, name: str, files: bool = True, **extra: Any) -> Workload:
        """api, worker, beat and the websocket process: the api image with the shared environment
        and (not beat, not the websocket process) the files volume."""
        volumes, mounts = self.files_volume() if files else ([], [])
        fields: dict[str, Any] = dict(
            name=name,
            image=self.images["api"],
            env_from=self.app_env_from(),
            volumes=volumes,
            mounts=mounts,
            pod_security=dict(DIFY_USER),
        )
        fields.update(extra)
        return Workload(**fields)

    def api_pod(self) -> dict[str, Any]:
        """The pod every Job of the api image starts from: the api Deployment's pod without what
        serves traffic (ports, probes, spreading) and without MODE (Jobs set their command)."""
        w = self.api_workload("api", env=copy.deepcopy(API_ONLY_ENV))
        return {
            "metadata": {"labels": names.labels("api")},
            "spec": self.pod_spec(w.pod_security, [self.container(w)], w.volumes),
        }

    def postgres_pod(self) -> dict[str, Any]:
        """The pod of the database tools Jobs (backup, restore, password rotation): the PostgreSQL
        image as its postgres user, with the connection settings of the shared environment."""
        w = Workload(
            name="db-tools",
            resources="tools",
            image=self.images["postgres"],
            env_from=[{"configMapRef": {"name": names.SHARED_ENV}}],
            env=[_secret_ref("PGPASSWORD", "DB_PASSWORD")],
            pod_security={"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70, "runAsNonRoot": True},
        )
        return {
            "metadata": {"labels": names.labels(names.DB_TOOLS)},
            "spec": self.pod_spec(w.pod_security, [self.container(w)], []),
        }

    def deployments(self) -> list[Workload]:
        s, replica = self.s, self.replicas
        http_probes = {
            "readiness": _http("/health"),
            "liveness": _http("/health", periodSeconds=30, timeoutSeconds=10),
            "startup": _http("/health", periodSeconds=5, failureThreshold=60),
        }
        credentials_key = names.CREDENTIALS
        workloads = [
            self.api_workload(
                "api",
                replicas=replica["api"],
                env=[{"name": "MODE", "value": "api"}, *API_ONLY_ENV],
                ports=[{"name": "http", "containerPort": 5001}],
                service_ports=[{"name": "http", "port": 5001, "targetPort": "http"}],
                **http_probes,
            ),
            self.api_workload(
                "worker",
                replicas=replica["worker"],
                env=[{"name": "MODE", "value": "worker"}],
                # A worker that stops answering its broker's ping is stuck; restart it. With Dify's light
                # check where the image has it (api/celery_healthcheck.py, what Dify's compose uses: the
                # broker settings without importing the whole app), else through celery_entrypoint.
                liveness=_shell(
                    "app=celery_entrypoint; [ -f celery_healthcheck.py ] && app=celery_healthcheck; "
                    'exec celery -A "$app.celery" inspect ping -d "celery@$HOSTNAME" --timeout 20',
                    initialDelaySeconds=60,
                    periodSeconds=60,
                    timeoutSeconds=40,
                    failureThreshold=5,
                ),
            ),
            # Exactly one beat: two would schedule every periodic task twice.
            self.api_workload(
                "beat",
                files=False,
                env=[{"name": "MODE", "value": "beat"}],
                # beat is useless without its broker; report (and after a while restart) when unreachable.
                liveness=_shell(
                    "python -c \"import os, redis; redis.Redis.from_url(os.environ['CELERY_BROKER_URL'], "
                    'socket_timeout=5).ping()"',
                    initialDelaySeconds=30,
                    periodSeconds=60,
                    timeoutSeconds=20,
                    failureThreshold=5,
                ),
                strategy={"type": "Recreate"},
            ),
            Workload(
                name="web",
                image=self.images["web"],
                replicas=replica["web"],
                env=[
                    {"name": "CONSOLE_API_URL", "value": self.public_url},
                    {"name": "APP_API_URL", "value": self.public_url},
                    {"name": "MARKETPLACE_API_URL", "value": "https://marketplace.dify.ai"},
                    {"name": "MARKETPLACE_URL", "value": "https://marketplace.dify.ai"},
                    {"name": "NEXT_TELEMETRY_DISABLED", "value": "1"},
                    {"name": "TEXT_GENERATION_TIMEOUT_MS", "value": "60000"},
                    {"name": "PM2_INSTANCES", "value": "2"},
                ],
                ports=[{"name": "http", "containerPort": 3000}],
                service_ports=[{"name": "http", "port": 3000, "targetPort": "http"}],
                # Next.js has no health endpoint; /apps answers (with a redirect to sign-in) once it serves.
                readiness=_http("/apps"),
                liveness=_http("/apps", periodSeconds=30, timeoutSeconds=10),
                startup=_http("/apps", periodSeconds=5, failureThreshold=60),
                pod_security=dict(DIFY_USER),
            ),
            # The sandbox runs as root: it chroots and switches to its sandbox user for each run
            # (baseline Pod Security allows exactly the capabilities it needs).
            Workload(
                name="sandbox",
                image=self.images["sandbox"],
                replicas=replica["sandbox"],
                env=[
                    {
                        "name": "API_KEY",
                        "valueFrom": {"secretKeyRef": {"name": credentials_key, "key": "CODE_EXECUTION_API_KEY"}},
                    },
                    {"name": "GIN_MODE", "value": "release"},
                    {"name": "WORKER_TIMEOUT", "value": "15"},
                    {"name": "ENABLE_NETWORK", "value": "true"},
                    {"name": "HTTP_PROXY", "value": "http://dify-ssrf-proxy:3128"},
                    {"name": "HTTPS_PROXY", "value": "http://dify-ssrf-proxy:3128"},
                    {"name": "SANDBOX_PORT", "value": "8194"},
                ],
                ports=[{"name": "http", "containerPort": 8194}],
                service_ports=[{"name": "http", "port": 8194, "targetPort": "http"}],
                readiness=_http("/health"),
                liveness=_http("/health", periodSeconds=30),
                # No volume over /dependencies: the image's python-requirements.txt is there (Dify's
                # compose mounts a directory that has the file; an emptyDir would hide it). It runs user
                # code as another uid and kills it on timeout: KILL (another uid's process) besides the
                # rest; baseline Pod Security allows them all (Docker's default set, which Dify's
                # compose relies on, has them).
                security={
                    "allowPrivilegeEscalation": False,
                    "capabilities": {
                        "drop": ["ALL"],
                        "add": ["SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL"],
                    },
                    "seccompProfile": dict(RUNTIME_DEFAULT),
                },
            ),
            Workload(
                name="plugin-daemon",
                image=self.images["plugin_daemon"],
                env=[
                    {"name": "DB_DATABASE", "value": s.db_plugin_database},
                    {"name": "SERVER_PORT", "value": "5002"},
                    _secret_ref("SERVER_KEY", "PLUGIN_DAEMON_KEY"),
                    {"name": "DIFY_INNER_API_URL", "value": "http://dify-api:5001"},
                    _secret_ref("DIFY_INNER_API_KEY", "INNER_API_KEY_FOR_PLUGIN"),
                    {"name": "MAX_PLUGIN_PACKAGE_SIZE", "value": "52428800"},
                    {"name": "PPROF_ENABLED", "value": "false"},
                    {"name": "PLUGIN_REMOTE_INSTALLING_HOST", "value": "0.0.0.0"},
                    {"name": "PLUGIN_REMOTE_INSTALLING_PORT", "value": "5003"},
                    {"name": "PLUGIN_WORKING_PATH", "value": "/app/storage/cwd"},
                    {"name": "FORCE_VERIFYING_SIGNATURE", "value": "true"},
                    {"name": "PYTHON_ENV_INIT_TIMEOUT", "value": "120"},
                    {"name": "PLUGIN_MAX_EXECUTION_TIMEOUT", "value": "600"},
                    {"name": "PLUGIN_STORAGE_TYPE", "value": "local"},
                    {"name": "PLUGIN_STORAGE_LOCAL_ROOT", "value": "/app/storage"},
                    {"name": "PLUGIN_INSTALLED_PATH", "value": "plugin"},
                    {"name": "PLUGIN_PACKAGE_CACHE_PATH", "value": "plugin_packages"},
                    {"name": "PLUGIN_MEDIA_CACHE_PATH", "value": "assets"},
                ],
                env_from=self.app_env_from(),
                ports=[{"name": "http", "containerPort": 5002}, {"name": "debug", "containerPort": 5003}],
                service_ports=[
                    {"name": "http", "port": 5002, "targetPort": "http"},
                    {"name": "debug", "port": 5003, "targetPort": "debug"},
                ],
                readiness=_http("/health/check"),
                liveness=_http("/health/check", periodSeconds=30),
                startup=_http("/health/check", periodSeconds=5, failureThreshold=60),
                volumes=[{"name": "storage", "persistentVolumeClaim": {"claimName": names.PLUGIN_PVC}}],
                mounts=[{"name": "storage", "mountPath": "/app/storage"}],
                security={
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": dict(RUNTIME_DEFAULT),
                },
                # The image runs as root (no USER in its Dockerfile), here without capabilities: root may
                # then write only what it owns or its group may write. fsGroup 0 makes the volume the
                # group's whoever wrote it; OnRootMismatch keeps restarts from walking every plugin file.
                pod_security={"fsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"},
                # One replica on a ReadWriteOnce volume: the old pod must go before the new one mounts it.
                strategy={"type": "Recreate"},
            ),
            self.ssrf_proxy_workload("ssrf-proxy", names.SSRF_PROXY_CONFIG, replicas=replica["ssrf-proxy"]),
            Workload(
                name="nginx",
                image=self.images["nginx"],
                replicas=replica["nginx"],
                ports=[{"name": "http", "containerPort": 8080}],
                readiness=_http("/healthz"),
                liveness=_http("/healthz", periodSeconds=30),
                volumes=[
                    {"name": "config", "configMap": {"name": names.NGINX_CONFIG}},
                    {"name": "tmp", "emptyDir": {}},
                ],
                mounts=[
                    {"name": "config", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
                pod_security={"runAsUser": 101, "runAsGroup": 101, "runAsNonRoot": True},
                security=dict(copy.deepcopy(RESTRICTED), readOnlyRootFilesystem=True),
            ),
        ]
        workloads += self.release_workloads()
        return workloads

    def release_workloads(self) -> list[Workload]:
        """What newer releases add: the websocket process (workflow collaboration, 1.14, opt-in),
        the agent backend, its local sandbox and the sandbox's SSRF proxy (1.16)."""
        r, out = self.release, []
        if r.has("api-websocket"):
            out.append(
                self.api_workload(
                    "api-websocket",
                    files=False,
                    resources="api",
                    env=[
                        {"name": "MODE", "value": "api"},
                        {"name": "SERVER_WORKER_AMOUNT", "value": "1"},
                        {
                            "name": "SERVER_WORKER_CLASS",
                            "value": "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
                        },
                        {"name": "GUNICORN_TIMEOUT", "value": "360"},
                    ],
                    ports=[{"name": "http", "containerPort": 5001}],
                    service_ports=[{"name": "http", "port": 5001, "targetPort": "http"}],
                    readiness=_http("/health"),
                    liveness=_http("/health", periodSeconds=30, timeoutSeconds=10),
                    startup=_http("/health", periodSeconds=5, failureThreshold=60),
                )
            )
        if r.has("agent-backend"):
            legacy = r.agent_env == "shellctl"  # 1.16 names; 1.17 renamed them (the old ones still work)
            sandbox_endpoint = "DIFY_AGENT_SHELLCTL_ENTRYPOINT" if legacy else "DIFY_AGENT_LOCAL_SANDBOX_ENDPOINT"
            sandbox_token = "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" if legacy else "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN"
            env = [
                _secret_ref("DIFY_AGENT_REDIS_URL", "AGENT_REDIS_URL"),
                {"name": "DIFY_AGENT_PLUGIN_DAEMON_URL", "value": "http://dify-plugin-daemon:5002"},
                _secret_ref("DIFY_AGENT_PLUGIN_DAEMON_API_KEY", "PLUGIN_DAEMON_KEY"),
                {"name": "DIFY_AGENT_INNER_API_URL", "value": "http://dify-api:5001"},
                _secret_ref("DIFY_AGENT_INNER_API_KEY", "INNER_API_KEY_FOR_PLUGIN"),
                {"name": sandbox_endpoint, "value": "http://dify-agent-local-sandbox:5004"},
                _secret_ref(sandbox_token, "AGENT_SANDBOX_AUTH_TOKEN"),
                {"name": "DIFY_AGENT_STUB_API_BASE_URL", "value": "http://dify-agent-backend:5050/agent-stub"},
                _secret_ref("DIFY_AGENT_SERVER_SECRET_KEY", "AGENT_SERVER_SECRET_KEY"),
            ]
            if r.agent_api_token:
                env.append(_secret_ref("DIFY_AGENT_API_TOKEN", "AGENT_BACKEND_API_TOKEN"))
            if not legacy:
                env += [
                    {"name": "DIFY_AGENT_RUNTIME_BACKEND", "value": "local"},
                    {"name": "DIFY_AGENT_SANDBOX_FILES_BASE_URL", "value": "http://dify-api:5001"},
                ]
            out.append(
                Workload(
                    name="agent-backend",
                    image=self.images["agent_backend"],
                    env=env,
                    ports=[{"name": "http", "containerPort": 5050}],
                    service_ports=[{"name": "http", "port": 5050, "targetPort": "http"}],
                    readiness={"tcpSocket": {"port": "http"}},
                    liveness={"tcpSocket": {"port": "http"}, "periodSeconds": 30},
                    # The image's user dify (uid 1001, dify-agent/Dockerfile).
                    pod_security=dict(DIFY_USER),
                )
            )
        if r.has("agent-local-sandbox"):
            env = [_secret_ref("SHELLCTL_AUTH_TOKEN", "AGENT_SANDBOX_AUTH_TOKEN")]
            if r.has("agent-ssrf-proxy"):
                # Its only way out: the agent SSRF proxy (which also reaches the agent stub and /files).
                env += [{"name": "HTTP_PROXY", "value": "http://dify-agent-ssrf-proxy:3128"},
                        {"name": "HTTPS_PROXY", "value": "http://dify-agent-ssrf-proxy:3128"}]  # fmt: skip
            if r.agent_volumes:
                volumes = [
                    {"name": "home", "persistentVolumeClaim": {"claimName": names.AGENT_HOME_PVC}},
                    {"name": "workspace", "persistentVolumeClaim": {"claimName": names.AGENT_WORKSPACE_PVC}},
                ]
            else:  # before 1.17 the home and the workspace lived as long as the container
                volumes = [{"name": "home", "emptyDir": {}}, {"name": "workspace", "emptyDir": {}}]
            out.append(
                Workload(
                    name="agent-local-sandbox",
                    image=self.images["agent_local_sandbox"],
                    env=env,
                    ports=[{"name": "http", "containerPort": 5004}],
                    service_ports=[{"name": "http", "port": 5004, "targetPort": "http"}],
                    readiness=_http("/healthz"),
                    liveness=_http("/healthz", periodSeconds=30),
                    volumes=volumes,
                    mounts=[
                        {"name": "home", "mountPath": "/home/dify"},
                        {"name": "workspace", "mountPath": "/workspace"},
                    ],
                    # The image's user dify, created first in a Debian image: uid 1000 (useradd, no fixed uid).
                    pod_security={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True},
                    strategy={"type": "Recreate"},
                )
            )
        if r.has("agent-ssrf-proxy"):
            proxy = self.ssrf_proxy_workload("agent-ssrf-proxy", names.AGENT_SSRF_PROXY_CONFIG, sandbox_port=False)
            out.append(proxy)
        return out

    def ssrf_proxy_workload(self, name: str, config: str, replicas: int = 1, sandbox_port: bool = True) -> Workload:
        """squid, the SSRF proxy of user code (and, with sandbox_port, the reverse proxy to the
        sandbox); the agent's sandbox has one of its own. squid starts as root and drops to its
        proxy user."""
        ports = [{"name": "proxy", "containerPort": 3128}]
        service_ports = [{"name": "proxy", "port": 3128, "targetPort": "proxy"}]
        if sandbox_port:
            ports.append({"name": "sandbox", "containerPort": 8194})
            service_ports.append({"name": "sandbox", "port": 8194, "targetPort": "sandbox"})
        return Workload(
            name=name,
            image=self.images["ssrf_proxy"],
            resources="ssrf_proxy",
            replicas=replicas,
            # squid logs to files (configs.SQUID_LOGGING); the command prints them as the container's
            # output, squid stays the first process (signals, exit code).
            command=list(configs.SQUID_COMMAND),
            ports=ports,
            service_ports=service_ports,
            readiness={"tcpSocket": {"port": "proxy"}},
            liveness={"tcpSocket": {"port": "proxy"}, "periodSeconds": 30},
            volumes=[
                {"name": "config", "configMap": {"name": config}},
                {"name": "spool", "emptyDir": {}},
                {"name": "logs", "emptyDir": {}},
            ],
            mounts=[
                {"name": "config", "mountPath": "/etc/squid/squid.conf", "subPath": "squid.conf"},
                {"name": "spool", "mountPath": "/var/spool/squid"},
                {"name": "logs", "mountPath": "/var/log/squid"},
            ],
            security={
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "FOWNER"]},
                "seccompProfile": dict(RUNTIME_DEFAULT),
            },
        )

    def statefulsets(self) -> list[Workload]:
        s, out = self.s, []
        pg_ready = 'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
        if s.postgres_enabled:
            out.append(
                Workload(
                    name="postgres",
                    image=self.images["postgres"],
                    args=["postgres", "-c", f"max_connections={s.postgres_max_connections}"],
                    env=[
                        {"name": "POSTGRES_USER", "value": s.db_username},
                        _secret_ref("POSTGRES_PASSWORD", "DB_PASSWORD"),
                        {"name": "POSTGRES_DB", "value": s.db_database},
                        {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                    ],
                    ports=[{"name": "postgres", "containerPort": 5432}],
                    service_ports=[{"name": "postgres", "port": 5432, "targetPort": "postgres"}],
                    readiness=_shell(pg_ready, periodSeconds=5),
                    liveness=_shell(pg_ready, periodSeconds=30, failureThreshold=6),
                    data_path="/var/lib/postgresql/data",
                    data_size=s.postgres_storage_size,
                    volumes=[
                        {"name": "init", "configMap": {"name": names.POSTGRES_INIT}},
                        {"name": "run", "emptyDir": {}},
                    ],
                    mounts=[
                        {"name": "init", "mountPath": "/docker-entrypoint-initdb.d"},
                        {"name": "run", "mountPath": "/var/run/postgresql"},
                    ],
                    # uid 70 is "postgres" in the alpine image.
                    pod_security={"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70, "runAsNonRoot": True},
                )
            )
        if s.redis_enabled:
            redis_ping = "redis-cli ping | grep -q PONG"
            out.append(
                Workload(
                    name="redis",
                    image=self.images["redis"],
                    command=["/bin/sh", "-c"],
                    args=['exec redis-server --requirepass "$REDIS_PASSWORD" --appendonly yes --dir /data'],
                    env=[
                        _secret_ref("REDIS_PASSWORD", "REDIS_PASSWORD"),
                        _secret_ref("REDISCLI_AUTH", "REDIS_PASSWORD"),
                    ],
                    ports=[{"name": "redis", "containerPort": 6379}],
                    service_ports=[{"name": "redis", "port": 6379, "targetPort": "redis"}],
                    readiness=_shell(redis_ping, periodSeconds=5),
                    liveness=_shell(redis_ping, periodSeconds=30),
                    data_path="/data",
                    data_size=s.redis_storage_size,
                    # uid 999 is "redis" in the alpine image.
                    pod_security={"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": True},
                )
            )
        if s.weaviate_enabled:
            out.append(
                Workload(
                    name="weaviate",
                    image=self.images["weaviate"],
                    env=[
                        {"name": "PERSISTENCE_DATA_PATH", "value": "/var/lib/weaviate"},
                        {"name": "QUERY_DEFAULTS_LIMIT", "value": "25"},
                        {"name": "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "value": "false"},
                        {"name": "DEFAULT_VECTORIZER_MODULE", "value": "none"},
                        {"name": "CLUSTER_HOSTNAME", "value": "node1"},
                        {"name": "AUTHENTICATION_APIKEY_ENABLED", "value": "true"},
                        _secret_ref("AUTHENTICATION_APIKEY_ALLOWED_KEYS", "WEAVIATE_API_KEY"),
                        {"name": "AUTHENTICATION_APIKEY_USERS", "value": "dify"},
                        {"name": "AUTHORIZATION_ADMINLIST_ENABLED", "value": "true"},
                        {"name": "AUTHORIZATION_ADMINLIST_USERS", "value": "dify"},
                        {"name": "DISABLE_TELEMETRY", "value": "true"},
                    ],
                    ports=[{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 50051}],
                    service_ports=[
                        {"name": "http", "port": 8080, "targetPort": "http"},
                        {"name": "grpc", "port": 50051, "targetPort": "grpc"},
                    ],
                    readiness=_http("/v1/.well-known/ready", periodSeconds=5),
                    liveness=_http("/v1/.well-known/live", periodSeconds=30),
                    data_path="/var/lib/weaviate",
                    data_size=s.weaviate_storage_size,
                    pod_security={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True},
                )
            )
        return out

    # ------------------------------------------------------------------ workloads
    def config_hash(self, pod_spec: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> str:
        """A hash of exactly the configuration a pod reads (the ConfigMaps and Secret keys it
        references): the pod restarts when, and only when, that changes. Keyed with SECRET_KEY
        where Secret values are part of it, so the hash shows whether they changed, never what."""
        parts: list[Any] = []
        uses_secret = False
        secret_data = {names.CREDENTIALS: self.secret_env}
        for container in pod_spec["containers"]:
            for item in container.get("envFrom") or []:
                if "configMapRef" in item:
                    ref = item["configMapRef"]["name"]
                    parts.append(["configmap", ref, config_maps.get(ref)])
                if "secretRef" in item:
                    ref = item["secretRef"]["name"]
                    parts.append(["secret", ref, secret_data.get(ref)])
                    uses_secret = True
            for env in container.get("env") or []:
                key_ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if key_ref:
                    parts.append(["secret-key", key_ref["name"], key_ref["key"],
                                  secret_data.get(key_ref["name"], {}).get(key_ref["key"])])  # fmt: skip
                    uses_secret = True
        for volume in pod_spec.get("volumes") or []:
            if "configMap" in volume:
                ref = volume["configMap"]["name"]
                parts.append(["configmap", ref, config_maps.get(ref)])
        text = json.dumps(parts, sort_keys=True).encode()
        if uses_secret:
            return hmac.new(self.creds.values["SECRET_KEY"].encode(), text, hashlib.sha256).hexdigest()
        return hashlib.sha256(text).hexdigest()

    def deployment(self, w: Workload, config_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
        selector = names.selector(w.name)
        spec = self.pod_spec(w.pod_security, [self.container(w)], w.volumes)
        # Replicas on different nodes (a hard rule with dify_ha) and zones; only pods of the same
        # ReplicaSet count, so a rolling update is not blocked by the old pods.
        spread = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "DoNotSchedule"
                if (self.s.ha and key == "kubernetes.io/hostname")
                else "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
                "matchLabelKeys": ["pod-template-hash"],
            }
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
        ]
        spec = dict(spec)
        containers = spec.pop("containers")
        volumes = spec.pop("volumes", None)
        spec["topologySpreadConstraints"] = spread
        spec["containers"] = containers
        if volumes:
            spec["volumes"] = volumes
        deployment_spec: dict[str, Any] = {}
        if w.name not in self.autoscaled:
            deployment_spec["replicas"] = w.replicas
        deployment_spec.update(
            revisionHistoryLimit=5,
            strategy=copy.deepcopy(w.strategy),
            selector={"matchLabels": dict(selector)},
            template={
                "metadata": {
                    "labels": dict(names.labels(w.name), **selector),
                    # Changes of the configuration this pod reads restart it.
                    "annotations": {names.CONFIG_HASH: self.config_hash(spec, config_maps)},
                },
                "spec": spec,
            },
        )
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.meta(names.workload(w.name), w.name),
                "spec": deployment_spec}  # fmt: skip

    def statefulset(self, w: Workload, config_maps: dict[str, dict[str, str]]) -> dict[str, Any]:
        selector = names.selector(w.name)
        spec = self.pod_spec(w.pod_security, [self.container(w)], w.volumes)
        claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
        if self.s.storage_class:
            claim_spec["storageClassName"] = self.s.storage_class
        claim_spec["resources"] = {"requests": {"storage": w.data_size}}
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": self.meta(names.workload(w.name), w.name),
            "spec": {
                "replicas": 1,
                "serviceName": names.workload(w.name),
                "selector": {"matchLabels": dict(selector)},
                # The data outlives the StatefulSet: uninstall keeps it unless asked (dify_purge_data).
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {
                    "metadata": {
                        "labels": dict(names.labels(w.name), **selector),
                        "annotations": {names.CONFIG_HASH: self.config_hash(spec, config_maps)},
                    },
                    "spec": spec,
                },
                "volumeClaimTemplates": [
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data", "labels": names.labels(w.name)},
                        "spec": claim_spec,
                    }
                ],
            },
        }

    def service(self, name: str, ports: list[dict[str, Any]], type_: str = "ClusterIP",
                annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        meta = self.meta(names.workload(name), name)
        if annotations:
            meta["annotations"] = dict(annotations)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": type_,
                "selector": names.selector(name),
                "ports": [dict(p, protocol="TCP") for p in ports],
            },
        }

    def nginx_service(self) -> dict[str, Any]:
        s = self.s
        annotations = dict(s.service_annotations)
        if s.expose == "loadbalancer":
            if s.loadbalancer_pool:
                annotations["metallb.io/address-pool"] = s.loadbalancer_pool
            if s.loadbalancer_ip:
                annotations["metallb.io/loadBalancerIPs"] = s.loadbalancer_ip
        return self.service(
            "nginx",
            [{"name": "http", "port": 80, "targetPort": "http"}],
            "LoadBalancer" if s.expose == "loadbalancer" else "ClusterIP",
            annotations,
        )

    def ingress(self) -> dict[str, Any]:
        s = self.s
        meta = self.meta(names.INGRESS, "nginx")
        if s.ingress_annotations:
            meta["annotations"] = dict(s.ingress_annotations)
        spec: dict[str, Any] = {}
        if s.ingress_class:
            spec["ingressClassName"] = s.ingress_class
        if s.ingress_tls_secret:
            spec["tls"] = [{"hosts": [s.ingress_host], "secretName": s.ingress_tls_secret}]
        spec["rules"] = [
            {
                "host": s.ingress_host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": names.workload("nginx"), "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}

    def budgets(self, workloads: list[Workload]) -> list[dict[str, Any]]:
        """A PodDisruptionBudget for every Deployment that runs (or may scale to) more than one pod:
        node drains keep at least half of them."""
        return [
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": self.meta(names.workload(w.name), w.name),
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": names.selector(w.name)}},
            }
            for w in workloads
            if w.replicas > 1 or w.name in self.autoscaled
        ]

    def autoscalers(self, workloads: list[Workload]) -> list[dict[str, Any]]:
        s = self.s
        return [
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": self.meta(names.workload(w.name), w.name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names.workload(w.name)},
                    "minReplicas": max(w.replicas, 1),
                    "maxReplicas": max(s.autoscaling_max_replicas, w.replicas),
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": s.autoscaling_cpu_percent},
                            },
                        }
                    ],
                },
            }
            for w in workloads
            if w.name in self.autoscaled
        ]

    @property
    def weaviate_backup_wanted(self) -> bool:
        """Whether copies of the bundled Weaviate's volume are taken before its image changes."""
        return bool(self.s.weaviate_enabled and self.s.get("backup_weaviate", False))

    def weaviate_step(self, image: str, model: dict[str, Any], replicas: int | None = None) -> dict[str, Any]:
        """The Weaviate StatefulSet with another image (a step of one minor version, or the one
        running), optionally with another number of replicas."""
        sts = next(o for o in model["objects"]["data"] if o["kind"] == "StatefulSet"
                   and o["metadata"]["name"] == names.workload("weaviate"))  # fmt: skip
        step = copy.deepcopy(sts)
        step["spec"]["template"]["spec"]["containers"][0]["image"] = image
        if replicas is not None:
            step["spec"]["replicas"] = replicas
        return step

    def weaviate_backup(self, running_image: str, model: dict[str, Any]) -> dict[str, Any]:
        """Stop Weaviate, copy its volume, or start it again as it ran: the StatefulSet at the
        running image with no replica and with its own, and the copy Job's pod. The pod runs as
        Weaviate's user, with the backups volume's group (the database tools' fsGroup) as a
        supplementary one and no fsGroup of its own: the kubelet changes neither volume's owner."""
        s = self.s
        stop = self.weaviate_step(running_image, model, replicas=0)
        tools = self.postgres_pod()
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
            env={"NAME": self.weaviate_backup_name(running_image), "KEEP": str(s.backup_keep)},
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
        return {
            "stop": stop,
            "resume": self.weaviate_step(running_image, model),
            "job": job,
        }

    # ------------------------------------------------------------------ Jobs
    def jobs(self) -> dict[str, dict[str, Any]]:
        """The pods of the Jobs: those of the api image start from the api pod, the database tools
        from the PostgreSQL pod; each adds only its command and what it alone needs."""
        s = self.s
        api = self.api_pod()
        tools = self.postgres_pod()
        C = names.JobContainer
        backups_volume = [{"name": "backups", "persistentVolumeClaim": {"claimName": names.BACKUPS_PVC}}]
        backups_mount = [{"name": "backups", "mountPath": "/backups"}]
        jobs = {
            # Exactly the api pod (dify_resources.migration, if set, merged over the api's resources);
            # the runner sets `flask db upgrade`.
            "migration": pod_template(
                api, container_name=C.MIGRATE,
                resources=_merge(self.resources["api"], s.resources["migration"]) if "migration" in s.resources
                else None, pod_annotations=s.migration_pod_annotations,
            ),
            "status_probe": pod_template(
                api, container_name=C.STATUS_PROBE, command=["python", "-c"], args=[scripts.STATUS_PROBE],
                resources=self.resources["tools"], pod_annotations=s.tools_pod_annotations,
            ),
            "backup": pod_template(
                tools, container_name=C.BACKUP, command=["/bin/sh", "-ec"], args=[scripts.BACKUP],
                env={"BACKUP_NAME": self.backup_name, "KEEP": str(s.backup_keep)},
                volumes=backups_volume, volume_mounts=backups_mount, pod_annotations=s.backup_pod_annotations,
            ),
            "restore": pod_template(
                tools, container_name=C.RESTORE, command=["/bin/sh", "-ec"], args=[scripts.RESTORE],
                env={"BACKUP": s.get("restore_backup", "")}, volumes=backups_volume, volume_mounts=backups_mount,
                pod_annotations=s.tools_pod_annotations,
            ),
            "rotation": pod_template(
                tools, container_name=C.ROTATE_PASSWORD, command=["/bin/sh", "-ec"],
                args=[scripts.ROTATE_DB_PASSWORD], secret_env={"NEW_PASSWORD": (names.ROTATION_SECRET, "NEW_PASSWORD")},
                pod_annotations=s.tools_pod_annotations,
            ),
        }  # fmt: skip
        if self.provider_setup:
            jobs["provider_setup"] = pod_template(
                api,
                container_name=C.PROVIDER_SETUP,
                command=["python", f"/setup/{PROVIDER_SETUP_SCRIPT_FILE}"],
                env={
                    "DIFY_API_URL": "http://dify-api:5001",
                    "DIFY_ADMIN_EMAIL": s.admin_email,
                    "DIFY_ADMIN_NAME": s.admin_name,
                    "DIFY_SETUP_TIMEOUT": str(s.provider_setup_timeout),
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
                secret_env={
                    "OPENAI_API_KEY": (names.PROVIDER_KEYS, "OPENAI_API_KEY"),
                    "DIFY_ADMIN_PASSWORD": (names.PROVIDER_KEYS, "ADMIN_PASSWORD"),
                },
                volumes=[{"name": "script", "configMap": {"name": names.PROVIDER_SETUP_SCRIPT}}],
                volume_mounts=[{"name": "script", "mountPath": "/setup", "readOnly": True}],
                resources=self.resources["tools"],
                pod_annotations=s.provider_setup_pod_annotations,
            )
        return jobs

    def rotation_secret(self) -> dict[str, Any]:
        """Hands the new database password to the rotation Job (never through the Job's spec)."""
        import base64

        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self.meta(names.ROTATION_SECRET, names.DB_TOOLS),
            "type": "Opaque",
            "data": {"NEW_PASSWORD": base64.b64encode(self.creds.values["DB_PASSWORD"].encode()).decode()},
        }
