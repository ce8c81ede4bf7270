# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a component declares (``Component``), and its workload as data (``Workload``), which the
builder renders alike for every component (kinds/workloads.py).

A component says what it uses and on which ports it serves what; the network flows, the lists of
autoscaled, early-started, internet-capable and data-client components and the resource table are
derived from these declarations (components/__init__.py), never written as lists of names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATA_SERVICES, Settings

DEPLOYMENT = "Deployment"
STATEFULSET = "StatefulSet"
JOB = "Job"  # the pod of a Job (kinds/jobs.py builds it): NetworkPolicy only
# A service outside the namespace that a setting chooses (an external vector store): what Dify's
# pods are told, no workload.
EXTERNAL = "External"
# Direct internet access: never; when dify_network_policy_internet_egress names it; always (the
# SSRF proxies, whose purpose it is). Never towards dify_private_cidrs nor link-local.
NEVER = "never"
ON_REQUEST = "on-request"
ALWAYS = "always"
# The files storage (a volume or a bucket): used like a service, reached through no pod.
FILES = "files"
# The internet as something a component uses (only among what it uses ``instead``, see Component).
INTERNET = "internet"

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


def http(path: str, port: str = "http", **extra: Any) -> dict[str, Any]:
    return dict({"httpGet": {"path": path, "port": port}}, **extra)


def shell(command: str, **extra: Any) -> dict[str, Any]:
    return dict({"exec": {"command": ["/bin/sh", "-c", command]}}, **extra)


def secret_ref(var: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": names.CREDENTIALS, "key": key}}}


@dataclass(frozen=True)
class Port:
    """A container port (and Service port of the same number), and what other components use it
    as: ``serves`` is the name in their ``uses``; empty for a port nobody in the namespace uses.
    ``until``: the first Dify release that no longer has it (Dify dropped it from its files)."""

    name: str
    number: int
    serves: str = ""
    until: str = ""

    def in_release(self, release: Any = None) -> bool:
        return not self.until or release is None or not release.at_least(self.until)


def image_version(image: str) -> tuple[int, ...]:
    """(major, minor, patch) of an image's tag (0.5.7-local -> (0, 5, 7)); () for other tags."""
    tag = image.rsplit("/", 1)[-1].partition(":")[2].split("@", 1)[0].lstrip("v")
    parts = []
    for part in tag.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits or not part.startswith(digits):
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class Metrics:
    """Where a component serves Prometheus metrics (dify_metrics_enabled): a port of its own (added
    to its pods and Service when on) or one it declares, the path, what its pods are told to turn
    them on, and from which version of its image on it serves them (``since``, empty: always)."""

    port: Port
    path: str = "/metrics"
    env: tuple[tuple[str, str], ...] = ()
    since: tuple[int, ...] = ()

    def served_by(self, image: str) -> bool:
        return not self.since or image_version(image) >= self.since


@dataclass(frozen=True, eq=False)
class Component:
    """Every fact about one component, declared once."""

    name: str
    kind: str
    # Describes its workload (Deployment, StatefulSet): (this component, the builder) -> Workload.
    # Jobs' pods are built in kinds/jobs.py.
    pod: Callable[[Component, Any], Workload] | None = None
    image: str = ""  # key of the release's images (dify_<image>_image sets a companion's)
    # Data services (settings.DATA_SERVICES), FILES, and what other components serve: the flows.
    uses: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    resources: str = ""  # key of dify_resources; default: the name with _ for -
    default_resources: dict[str, Any] | None = None
    replicas: str = ""  # the variable of its replica count (dify_ha: at least two)
    autoscalable: bool = False
    # Never touches Dify's schema: on a first install it starts while the migration runs.
    schema_independent: bool = False
    internet: str = NEVER
    # Users reach it (LoadBalancer or Ingress): its Service is the expose phase's.
    exposed: bool = False
    # The release feature it belongs to ("": every release has it); then it runs where the
    # release's catalog components list its name.
    feature: str = ""
    # What the argument spec cannot check about its variables (messages naming them).
    checks: Callable[[Settings], list[str]] | None = None
    # A vector store: what Dify's pods are told to reach it (bundled or external), from the settings.
    client_env: Callable[[Settings], dict[str, str]] | None = None
    # What it uses instead of one of its uses where the installation runs nothing that serves it
    # (Dify's compose then connects it directly): use -> uses, INTERNET among them for the internet.
    # The agent's local sandbox before the agent's SSRF proxy came (1.16.0).
    instead: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Prometheus metrics it serves (dify_metrics_enabled).
    metrics: Metrics | None = None
    # Its replicas call each other on the ports they serve (a rule between its own pods when it
    # runs more than one).
    peers: bool = False
    # Whether dify_ha gives it a second replica (None: always; the plugin daemon: where its
    # storage is shared).
    scales: Callable[[Settings], bool] | None = None

    @property
    def resources_key(self) -> str:
        return self.resources or self.name.replace("-", "_")

    @property
    def serves(self) -> tuple[str, ...]:
        """What it serves to others, in the order of its ports."""
        return tuple(dict.fromkeys(p.serves for p in self.ports if p.serves))

    def ports_in(self, release: Any = None) -> tuple[Port, ...]:
        """Its ports in a release (all of them without one)."""
        return tuple(p for p in self.ports if p.in_release(release))

    def port_numbers(self, service: str, release: Any = None) -> tuple[int, ...]:
        return tuple(p.number for p in self.ports_in(release) if p.serves == service)

    @property
    def data_service(self) -> str:
        """The data service it is the bundled form of ("" for none)."""
        return next((s for s in self.serves if s in DATA_SERVICES), "")

    def runs(self, s: Settings, release: Any) -> bool:
        """Whether the installation runs it: a data service when bundled and the kind chosen (the
        vector store), a release feature's component where the release has it, the rest always."""
        if self.data_service:
            return s.bundled(self.data_service) and s.provider(self.data_service) == self.name
        if self.feature:
            return bool(release.has(self.name))
        return True

    def metrics_on(self, b: Any) -> Metrics | None:
        """Its metrics, when they are asked for and its image serves them."""
        if self.metrics and b.s.get("metrics_enabled", False) and self.metrics.served_by(b.images[self.image]):
            return self.metrics
        return None

    def workload(self, b: Any, **fields: Any) -> Workload:
        """A Workload with what the component declares (name, image, resources, replicas, ports,
        its metrics when asked for); its pod function gives the rest."""
        ports = list(self.ports_in(b.release))
        metrics = self.metrics_on(b)
        if metrics:
            if metrics.port not in ports:
                ports.append(metrics.port)
            fields["env"] = [*fields.get("env", []), *({"name": k, "value": v} for k, v in metrics.env)]
        return Workload(
            name=self.name,
            image=b.images[self.image],
            resources=self.resources_key,
            replicas=b.replicas.get(self.name, 1),
            ports=[{"name": p.name, "containerPort": p.number} for p in ports],
            # An exposed component's Service is built by its module for the expose phase.
            service_ports=[] if self.exposed else
            [{"name": p.name, "port": p.number, "targetPort": p.name} for p in ports],
            metrics=metrics,
            **fields,
        )  # fmt: skip


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
    # Its metrics, when scraped (Component.metrics_on).
    metrics: Metrics | None = None

    @property
    def resources_key(self) -> str:
        return self.resources or self.name.replace("-", "_")
