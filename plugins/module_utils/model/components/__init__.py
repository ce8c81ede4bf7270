# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every component of an installation, one module per component or family, and what is derived
from their declarations: the network flows, the components that are autoscaled, started early,
allowed on the internet, given the extra egress of external data services, their resources.

Adding a component: a module declaring it (base.Component), its place in ``ALL``. Its flows follow
from what it ``uses`` and what its ports ``serve``; nothing else lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import (
    agent,
    api,
    jobs,
    nginx,
    pgvector,
    plugin_daemon,
    postgres,
    redis,
    sandbox,
    ssrf_proxy,
    vector_stores,
    weaviate,
    web,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    ALWAYS,
    EXTERNAL,
    INTERNET,
    JOB,
    ON_REQUEST,
    Component,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, Settings
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.variables import Variables

# In the order they are rendered: what every release runs, then what newer releases add (in the
# order they came), the data services, the pods of the Jobs, the external vector stores.
ALL: tuple[Component, ...] = (
    api.API,
    api.WORKER,
    api.BEAT,
    web.WEB,
    sandbox.SANDBOX,
    plugin_daemon.PLUGIN_DAEMON,
    ssrf_proxy.SSRF_PROXY,
    nginx.NGINX,
    api.WEBSOCKET,
    agent.BACKEND,
    agent.LOCAL_SANDBOX,
    ssrf_proxy.AGENT_SSRF_PROXY,
    postgres.POSTGRES,
    redis.REDIS,
    weaviate.WEAVIATE,
    pgvector.PGVECTOR,
    *jobs.JOBS,
    *vector_stores.EXTERNAL_STORES,
)


@dataclass(frozen=True)
class Flow:
    """Pods of ``sources`` may open connections to the pods of ``to`` on ``ports``."""

    to: str
    ports: tuple[int, ...]
    sources: tuple[str, ...]


# Everything below is derived from ALL when asked (a test may declare one more component).
def named(name: str) -> Component:
    return next(c for c in ALL if c.name == name)


def providers(service: str) -> list[Component]:
    """The components that serve what others use under that name (a vector store: every kind)."""
    return [c for c in ALL if service in c.serves]


def uses(c: Component, running: Iterable[str] | None = None) -> tuple[str, ...]:
    """What a component uses; with the components an installation runs, also what it uses
    ``instead`` of a use nothing running serves (INTERNET left out: see direct_internet)."""
    out = list(c.uses)
    for service in _missing(c, running):
        out += [u for u in c.instead[service] if u != INTERNET]
    return tuple(dict.fromkeys(out))


def _missing(c: Component, running: Iterable[str] | None) -> list[str]:
    """The uses of a running component with an ``instead`` that no running component serves."""
    if running is None:
        return []
    names = set(running)
    if c.name not in names:
        return []
    return [s for s in c.instead if s in c.uses and not any(p.name in names for p in providers(s))]


def direct_internet(running: Iterable[str]) -> tuple[str, ...]:
    """The running components that reach the internet themselves because what they would go
    through does not run (their ``instead`` names INTERNET)."""
    names = list(running)
    return tuple(c.name for c in ALL if c.name in names
                 and any(INTERNET in c.instead[s] for s in _missing(c, names)))  # fmt: skip


def flows(release: Any = None, running: Iterable[str] | None = None) -> tuple[Flow, ...]:
    """One flow per served port group, its sources every component that uses it. Flows of the
    components every release has come first, then those of each release feature (a flow belongs
    to the later feature of its two ends). Clients are taken from the users inward (the exposed
    component first), so flows and sources keep that order. With a release, only the ports it
    has; with the running components, the uses ``instead`` of what does not run."""
    running = None if running is None else list(running)
    features = list(dict.fromkeys(c.feature for c in ALL))
    clients = sorted(ALL, key=lambda c: not c.exposed)
    found: dict[tuple[int, str, str], list[str]] = {}
    for client in clients:
        for service in uses(client, running):
            for provider in providers(service):
                if not provider.port_numbers(service, release):
                    continue
                group = max(features.index(client.feature), features.index(provider.feature))
                found.setdefault((group, provider.name, service), []).append(client.name)
    ordered = sorted(found.items(), key=lambda item: item[0][0])
    return tuple(Flow(to, named(to).port_numbers(service, release), tuple(sources))
                 for (_group, to, service), sources in ordered)  # fmt: skip


def _names(fact: Callable[[Component], Any]) -> tuple[str, ...]:
    return tuple(c.name for c in ALL if fact(c))


def autoscalable() -> tuple[str, ...]:
    return _names(lambda c: c.autoscalable)


def schema_independent() -> tuple[str, ...]:
    """May start during a first install's migration (they never touch Dify's schema)."""
    return _names(lambda c: c.schema_independent)


def data_components(s: Settings | None = None) -> tuple[str, ...]:
    """The bundled data services (StatefulSets): what a switch to an external one prunes. With
    settings: those the settings may bundle (the chosen vector store's, not the others')."""
    return _names(lambda c: c.data_service and (s is None or s.provider(c.data_service) == c.name))


def exposed() -> tuple[str, ...]:
    return _names(lambda c: c.exposed)


def internet_capable() -> tuple[str, ...]:
    """What dify_network_policy_internet_egress may name."""
    return _names(lambda c: c.internet == ON_REQUEST)


def internet_always() -> tuple[str, ...]:
    return _names(lambda c: c.internet == ALWAYS)


def data_clients() -> tuple[str, ...]:
    """The clients of the database: they reach external data services (dify_network_policy_extra_egress)."""
    return _names(lambda c: DATABASE in c.uses)


def job_components() -> tuple[str, ...]:
    return _names(lambda c: c.kind == JOB)


def of_feature(feature: str) -> tuple[str, ...]:
    """The components of a release feature (the catalog lists them by name)."""
    return _names(lambda c: c.feature == feature)


def default_resources() -> dict[str, dict[str, Any]]:
    """Requests and limits per resources key (dify_resources is merged over them)."""
    return {c.resources_key: c.default_resources for c in ALL if c.default_resources}


def resource_keys() -> tuple[str, ...]:
    """What dify_resources may name."""
    return tuple(dict.fromkeys(c.resources_key for c in ALL if c.kind != EXTERNAL))


def replica_variables() -> dict[str, str]:
    """Component -> the variable of its replica count, in the argument spec's order (messages)."""
    order = list(Variables.__annotations__)
    return {c.name: c.replicas for c in sorted((c for c in ALL if c.replicas), key=lambda c: order.index(c.replicas))}


def image_variables() -> dict[str, str]:
    """Companion images a variable may set (image -> dify_<image>_image, in the argument spec's
    order); api and web follow dify_image_tag."""
    images = {c.image for c in ALL}
    return {var[: -len("_image")]: var for var in Variables.__annotations__
            if var.endswith("_image") and var[: -len("_image")] in images}  # fmt: skip


def running(s: Settings, release: Any, kind: str) -> list[Component]:
    """The components of one kind the installation runs, in order."""
    return [c for c in ALL if c.kind == kind and c.runs(s, release)]


def vector_store_kinds() -> tuple[str, ...]:
    """The kinds of vector store dify_vector_store may choose (each tells Dify's pods how to reach it)."""
    return _names(lambda c: c.client_env is not None)


def vector_store(s: Settings) -> Component:
    """The vector store in use, bundled or external."""
    return next(c for c in ALL if c.client_env is not None and c.name == s.vector_store)
