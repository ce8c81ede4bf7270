# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adopting a running Dify (a Helm chart's or a hand-made one): find it from its running objects,
not from a chart's names, and plan the copy into a new installation. Nothing here changes the
source; the copy Jobs only read it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.catalog import tag_of, version_tuple
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import weaviate

FILES_PATH = "/app/api/storage"
PLUGIN_PATH = "/app/storage"
WEAVIATE_PATH = "/var/lib/weaviate"
# The SHA-256 of the SECRET_KEY Dify's .env.example published up to 1.13 (dify:docker/.env.example@0ef8b5a0ca
# line 101, @3bd228ddb7, @59639ca9b2; empty from 1.14.2 on): a source running with it is told to change it.
EXAMPLE_SECRET_KEY_SHA256 = "0f44b34c6311bcb547867d393c1c56e6564e03d905fdd023637f549358bf3670"

# The keys an installation's data needs to stay readable (SECRET_KEY signs sessions and file URLs;
# the pairs keep plugins and code execution working without reconfiguring anything).
CARRIED_KEYS = {
    "SECRET_KEY": "secret_key",
    "PLUGIN_DAEMON_KEY": "plugin_daemon_key",
    "INNER_API_KEY_FOR_PLUGIN": "plugin_inner_api_key",
    "CODE_EXECUTION_API_KEY": "sandbox_api_key",
}
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def image_name(image: str) -> str:
    """langgenius/dify-api:1.11.4 -> dify-api."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def postgres_major(image: str) -> int | None:
    """postgres:15-alpine -> 15, bitnamilegacy/postgresql:16.3.0-debian-12-r4 -> 16; None when the
    tag says no version (latest, a digest)."""
    match = re.match(r"(\d+)", tag_of(image))
    return int(match.group(1)) if match else None


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values ($$ is a literal $; unknown names stay)."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR.sub(one, value)


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}


def resolve_env(container: dict[str, Any], config_maps: dict[str, dict], secrets: dict[str, dict]) -> dict[str, str]:
    """The environment a container really gets: envFrom (in order, later wins), then env (literal
    values with $(VAR) expansion, Secret and ConfigMap keys), as the kubelet builds it."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = (config_maps.get(source["configMapRef"]["name"]) or {}).get("data") or {}
        elif "secretRef" in source:
            found = secrets.get(source["secretRef"]["name"])
            data = decoded(found) if found else {}
        else:
            data = {}
        env.update({prefix + k: str(v) for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        ref = item.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            found = secrets.get(ref["secretKeyRef"]["name"])
            value = decoded(found).get(ref["secretKeyRef"]["key"]) if found else None
        elif "configMapKeyRef" in ref:
            cm = config_maps.get(ref["configMapKeyRef"]["name"]) or {}
            value = (cm.get("data") or {}).get(ref["configMapKeyRef"]["key"])
        else:
            value = None  # fieldRef, resourceFieldRef: nothing the adoption needs
        if value is not None:
            env[name] = value
    return env


@dataclass
class Volume:
    """A volume to copy: the claim, where its workload mounts it, and how to read it."""

    claim: str
    workload: str
    pod_security: dict[str, Any] = field(default_factory=dict)
    node: str = ""  # where the pod using a ReadWriteOnce claim runs (the reader must run there too)

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "workload": self.workload, "pod_security": self.pod_security, "node": self.node}


@dataclass
class Source:
    namespace: str
    api: str  # kind/name of the api workload
    image: str
    release: str
    env: dict[str, str]
    db: dict[str, Any]
    plugin_database: str
    files: Volume | None = None
    s3: dict[str, str] = field(default_factory=dict)
    plugins: Volume | None = None
    weaviate: Volume | None = None
    vector_store: dict[str, str] = field(default_factory=dict)  # an external store to reuse
    workloads: list[dict[str, Any]] = field(default_factory=list)  # every Dify workload, its replicas
    db_image: str = ""  # the bundled PostgreSQL's image, when DB_HOST is a Service of the namespace
    helm_release: str = ""

    @property
    def keys(self) -> dict[str, str]:
        env = self.env
        keys = {k: env.get(k, "") for k in CARRIED_KEYS}
        keys["INNER_API_KEY_FOR_PLUGIN"] = env.get("INNER_API_KEY_FOR_PLUGIN") or env.get(
            "PLUGIN_DIFY_INNER_API_KEY", ""
        )
        return {k: v for k, v in keys.items() if v}

    def summary(self) -> dict[str, Any]:
        """What was found, without a secret value."""
        return {
            "namespace": self.namespace,
            "api": self.api,
            "release": self.release,
            "helm_release": self.helm_release,
            "database": {k: v for k, v in self.db.items() if k != "password"},
            "plugin_database": self.plugin_database,
            "files": self.files.as_dict() if self.files else (
                {"s3_bucket": self.s3.get("bucket")} if self.s3 else None),
            "plugins": self.plugins.as_dict() if self.plugins else None,
            "weaviate": self.weaviate.as_dict() if self.weaviate else (
                {"endpoint": self.vector_store.get("endpoint")} if self.vector_store else None),
            "carried_keys": sorted(self.keys),
            "workloads": self.workloads,
        }  # fmt: skip


def _items(found: dict[str, Any], read_id: str) -> list[dict[str, Any]]:
    return list((found.get(read_id) or {}).get("resources") or [])


def _workloads(found: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for read_id, kind in (("source_deployments", "Deployment"), ("source_statefulsets", "StatefulSet")):
        out += [dict(obj, kind=kind) for obj in _items(found, read_id)]
    return out


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return ((workload.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []


def _mounted_claim(workload: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str | None, str]:
    """The claim mounted at path (or above it), or (None, what is mounted there instead)."""
    pod = workload["spec"]["template"]["spec"]
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"]))
    mount = next(
        (m for m in mounts if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")), None
    )
    if mount is None:
        return None, "nothing (the container's own file system)"
    volume = next((v for v in pod.get("volumes") or [] if v["name"] == mount["name"]), None)
    if volume and "persistentVolumeClaim" in volume:
        return volume["persistentVolumeClaim"]["claimName"], ""
    if volume is None:  # a StatefulSet's claim template
        for template in workload["spec"].get("volumeClaimTemplates") or []:
            if template["metadata"]["name"] == mount["name"]:
                return f"{template['metadata']['name']}-{workload['metadata']['name']}-0", ""
        return None, f"volume {mount['name']} (not found)"
    kind = next((k for k in volume if k != "name"), "?")
    return None, f"volume {mount['name']} ({kind})"


def _node_of(workload: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    selector = ((workload["spec"].get("selector") or {}).get("matchLabels")) or {}
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()) and pod["spec"].get("nodeName"):
            return pod["spec"]["nodeName"]
    return ""


def _served_image(host: str, services: list[dict[str, Any]], workloads: list[dict[str, Any]]) -> str:
    """The image of the workload behind Service `host` of the namespace ("" if none is)."""
    service = next((o for o in services if o["metadata"]["name"] == host), None)
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    for workload in workloads if selector else []:
        labels = (workload["spec"]["template"].get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()) and _containers(workload):
            return _containers(workload)[0].get("image", "")
    return ""


def _other_store(ns: str, env: dict[str, str], services: set[str]) -> dict[str, str]:
    """A vector store other than Weaviate (dify_vector_store): an external Qdrant or pgvector is
    reused (its variables); a pgvector server of the source namespace is not copied (the new one
    starts empty, and flask vdb-migrate indexes again). Other stores are refused."""
    kind = (env.get("VECTOR_STORE") or "weaviate").lower()
    if kind == "qdrant" and env.get("QDRANT_URL"):
        return {"kind": kind, "endpoint": env["QDRANT_URL"], "qdrant_url": env["QDRANT_URL"],
                "qdrant_api_key": env.get("QDRANT_API_KEY", "")}  # fmt: skip
    if kind == "pgvector" and env.get("PGVECTOR_HOST") and env["PGVECTOR_HOST"] not in services:
        return {"kind": kind, "endpoint": f"{env['PGVECTOR_HOST']}:{env.get('PGVECTOR_PORT') or 5432}",
                "pgvector_enabled": False, "pgvector_host": env["PGVECTOR_HOST"],
                "pgvector_port": int(env.get("PGVECTOR_PORT") or 5432), "pgvector_user": env.get("PGVECTOR_USER", ""),
                "pgvector_password": env.get("PGVECTOR_PASSWORD", ""),
                "pgvector_database": env.get("PGVECTOR_DATABASE") or "dify"}  # fmt: skip
    if kind == "pgvector":
        return {"kind": kind}  # in the source namespace: a new bundled one, indexed again
    if kind != "weaviate":
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns}: its Dify keeps vectors in {kind} (VECTOR_STORE); "
            "adoption carries over Weaviate, pgvector and Qdrant."
        )
    return {}


def in_namespace(host: str, namespace: str, services: set[str]) -> bool:
    """Whether a host names a Service of the namespace: its short name, or qualified with the
    namespace (weaviate.dify, weaviate.dify.svc, weaviate.dify.svc.cluster.local or another
    cluster domain)."""
    name, _dot, rest = host.partition(".")
    return name in services and (not rest or rest == namespace or rest.startswith(f"{namespace}.svc"))


def _service_host(host: str, namespace: str, services: set[str]) -> str:
    """A Service name of the source namespace, qualified so the target namespace reaches it."""
    return f"{host}.{namespace}.svc" if host in services else host


def _volume(ns: str, workload: dict[str, Any], container: dict[str, Any], path: str, what: str,
            pods: list[dict[str, Any]], why: str = "") -> Volume:  # fmt: skip
    """The claim mounted at `path` of a source workload; refused when it is not a volume claim."""
    claim, instead = _mounted_claim(workload, container, path)
    if claim is None:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns}: {what} in {path} on {instead}, which cannot be read "
            f"from outside the pod{why}."
        )
    security = workload["spec"]["template"]["spec"].get("securityContext") or {}
    return Volume(claim, f"{workload['kind']}/{workload['metadata']['name']}", security, _node_of(workload, pods))


def discover(s: Any, found: dict[str, Any]) -> Source:
    """The Dify running in dify_adopt_namespace, from its objects. Refuses (naming the variable)
    what cannot be adopted safely."""
    ns = s.adopt_namespace
    config_maps = {o["metadata"]["name"]: o for o in _items(found, "source_configmaps")}
    secrets = {o["metadata"]["name"]: o for o in _items(found, "source_secrets")}
    services = {o["metadata"]["name"] for o in _items(found, "source_services")}
    pods = _items(found, "source_pods")
    workloads = _workloads(found)
    if not workloads:
        raise InputError(f"Nothing was changed. dify_adopt_namespace {ns}: no Deployment or StatefulSet there.")

    apis, daemons, weaviates = [], [], []
    for workload in workloads:
        for container in _containers(workload):
            name = image_name(container.get("image", ""))
            if name == "dify-api":
                env = resolve_env(container, config_maps, secrets)
                if env.get("MODE", "api") == "api":
                    apis.append((workload, container, env))
            elif name == "dify-plugin-daemon":
                daemons.append((workload, container))
            elif name == "weaviate":
                weaviates.append((workload, container))
    if not apis:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns}: no Dify api there (a Deployment or StatefulSet "
            "running langgenius/dify-api with MODE=api)."
        )
    if len(apis) > 1:
        found_names = sorted(f"{w['kind']}/{w['metadata']['name']}" for w, _c, _e in apis)
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns} runs more than one Dify api ({', '.join(found_names)}): "
            "adopt one installation per namespace."
        )
    workload, container, env = apis[0]
    image = container["image"]
    release = tag_of(image)

    missing = [k for k in ("SECRET_KEY", "DB_HOST", "DB_USERNAME", "DB_PASSWORD") if not env.get(k)]
    if missing:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns}: the api's environment has no {', '.join(missing)} "
            "(or a Secret or ConfigMap it names cannot be read)."
        )
    db = {
        "host": _service_host(env["DB_HOST"], ns, services),
        "port": int(env.get("DB_PORT") or 5432),
        "user": env["DB_USERNAME"],
        "password": env["DB_PASSWORD"],
        "database": env.get("DB_DATABASE") or "dify",
    }
    source = Source(namespace=ns, api=f"{workload['kind']}/{workload['metadata']['name']}", image=image,
                    release=release, env=env, db=db,
                    plugin_database=env.get("DB_PLUGIN_DATABASE") or "dify_plugin")  # fmt: skip
    source.db_image = _served_image(env["DB_HOST"], _items(found, "source_services"), workloads)

    # Uploaded files: a volume at the api's storage path, or a bucket to reuse.
    storage = (env.get("STORAGE_TYPE") or "opendal").lower()
    if storage in ("opendal", "local") and (env.get("OPENDAL_SCHEME") or "fs") == "fs":
        source.files = _volume(ns, workload, container, FILES_PATH, "the api keeps its files", pods,
                               " (and would not survive it either)")  # fmt: skip
    elif storage == "s3":
        source.s3 = {"endpoint": env.get("S3_ENDPOINT", ""), "bucket": env.get("S3_BUCKET_NAME", ""),
                     "region": env.get("S3_REGION", ""), "access_key": env.get("S3_ACCESS_KEY", ""),
                     "secret_key": env.get("S3_SECRET_KEY", "")}  # fmt: skip
    else:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {ns}: the api keeps its files in {storage} storage; "
            "only a volume or S3 can be adopted."
        )

    # The plugin daemon's own storage and database.
    if len(daemons) == 1:
        daemon, daemon_container = daemons[0]
        daemon_env = resolve_env(daemon_container, config_maps, secrets)
        source.plugin_database = daemon_env.get("DB_DATABASE") or source.plugin_database
        root = daemon_env.get("PLUGIN_STORAGE_LOCAL_ROOT") or PLUGIN_PATH
        source.plugins = _volume(ns, daemon, daemon_container, root, "the plugin daemon keeps its plugins", pods)

    # The vector store: a bundled Weaviate's volume, or an external one to reuse.
    if (env.get("VECTOR_STORE") or "weaviate") == "weaviate" and env.get("WEAVIATE_ENDPOINT"):
        host = re.sub(r"^\w+://", "", env["WEAVIATE_ENDPOINT"]).split(":", 1)[0].split("/", 1)[0]
        if in_namespace(host, ns, services) and weaviates:
            store, store_container = weaviates[0]
            source.weaviate = _volume(ns, store, store_container, WEAVIATE_PATH, "Weaviate keeps its data", pods)
        else:
            source.vector_store = {"endpoint": env["WEAVIATE_ENDPOINT"],
                                   "grpc_endpoint": env.get("WEAVIATE_GRPC_ENDPOINT", ""),
                                   "api_key": env.get("WEAVIATE_API_KEY", "")}  # fmt: skip
    else:
        source.vector_store = _other_store(ns, env, services)

    # Every workload of the source namespace (what dify_adopt_stop_source scales to zero, and back).
    source.workloads = sorted(
        ({"kind": w["kind"], "name": w["metadata"]["name"], "replicas": (w.get("spec") or {}).get("replicas", 1)}
         for w in workloads),
        key=lambda w: (w["kind"], w["name"]),
    )  # fmt: skip
    annotations = workload["metadata"].get("annotations") or {}
    source.helm_release = annotations.get("meta.helm.sh/release-name", "")
    return source


def check(s: Any, source: Source, releases: dict[str, Any], target_stored: dict[str, str] | None,
          found: dict[str, Any]) -> list[str]:  # fmt: skip
    """Refuse what is unsafe (before anything changes); returns notices."""
    notices = []
    if s.namespace == source.namespace and not s.adopt_allow_same_namespace:
        raise InputError(
            f"Nothing was changed. dify_namespace {s.namespace} is dify_adopt_namespace: the adoption copies into a "
            "new namespace and leaves the source as it is."
        )
    lines = sorted((releases.get("lines") or {}), key=lambda line: version_tuple(line) or ())
    have, want = version_tuple(source.release), version_tuple(s.image_tag)
    if have is None:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {source.namespace}: the api runs {source.image}, whose tag "
            "names no Dify release."
        )
    if lines and have[:2] > (version_tuple(lines[-1]) or ())[:2]:
        raise InputError(
            f"Nothing was changed. dify_adopt_namespace {source.namespace} runs Dify {source.release}, newer than "
            f"this collection knows (up to {lines[-1]})."
        )
    if want is not None and want < have:
        raise InputError(
            f"Nothing was changed. dify_image_tag {s.image_tag} is older than the Dify the source runs "
            f"({source.release}): set dify_image_tag to {source.release} or newer."
        )
    stored_key = (target_stored or {}).get("SECRET_KEY")
    if stored_key and stored_key != source.keys.get("SECRET_KEY"):
        raise InputError(
            f"Nothing was changed. dify_namespace {s.namespace} already holds another Dify (its Secret "
            f"{names.CREDENTIALS} has another SECRET_KEY): adopt into a new namespace."
        )
    for obj in _items(found, "deployments"):
        labels = obj["metadata"].get("labels") or {}
        if labels.get(names.LABEL_MANAGED_BY) != names.MANAGED_BY and any(
            image_name(c.get("image", "")) == "dify-api" for c in _containers(obj)
        ):
            raise InputError(
                f"Nothing was changed. dify_namespace {s.namespace} already runs a Dify this collection does not "
                f"manage ({obj['metadata']['name']}): adopt into a new namespace."
            )
    if hashlib.sha256(source.keys.get("SECRET_KEY", "").encode()).hexdigest() == EXAMPLE_SECRET_KEY_SHA256:
        notices.append(
            "The source runs with the SECRET_KEY published in Dify's .env.example (up to 1.13): anyone can sign "
            "sessions for it. It is carried over so that nothing breaks; change it once the adoption is done: "
            "dify_secret_key with a new key (openssl rand -hex 32) and dify_rotate_secret_key: true (everyone signs "
            "in again)."
        )
    if source.vector_store.get("endpoint"):
        notices.append(f"The vector store {source.vector_store['endpoint']} is reused, not copied.")
    elif source.vector_store:
        notices.append(
            "The source's own pgvector server is not copied: the new one starts empty. Once the adoption is done, "
            f"index again: kubectl -n {s.namespace} exec deploy/{names.workload('api')} -- flask vdb-migrate."
        )
    if source.s3:
        notices.append(f"The files in bucket {source.s3['bucket']} are reused, not copied.")
    if source.plugin_database == source.db["database"]:
        notices.append(
            f"The source's plugin daemon keeps its tables in {source.db['database']} itself: that database is "
            f"copied into {s.db_plugin_database} as well."
        )
    notices.append("Redis is not copied (queues and caches refill; users sign in again only if sessions expire).")
    return notices


def check_postgres(source: Source, target_image: str) -> None:
    """pg_dump reads servers of its own major version or older, and a dump does not go back a major
    version: the new PostgreSQL (whose image also runs the copy) must be at least the source's."""
    have, want = postgres_major(source.db_image), postgres_major(target_image)
    if have is not None and want is not None and have > want:
        raise InputError(
            f"Nothing was changed. dify_postgres_image {target_image} is PostgreSQL {want}, older than the source's "
            f"({source.db_image}, PostgreSQL {have}): its pg_dump cannot read the source and the data cannot go back "
            f"a major version. Set dify_postgres_image to a PostgreSQL {have} image (postgres:{have}-alpine)."
        )


# ----------------------------------------------------------------------------- the plan


@dataclass
class Adoption:
    source: Source
    settings: Any  # the target's settings, with what is carried over
    copy: list[str]
    notices: list[str]
    record: dict[str, str] | None


def plan(s: Any, found: dict[str, Any], releases: dict[str, Any], target_stored: dict[str, str] | None) -> Adoption:
    """What the adoption will do: discover the source, refuse the unsafe, decide what to copy
    (nothing when the record says it was done, unless forced with the source's name to confirm)."""
    source = discover(s, found)
    notices = check(s, source, releases, target_stored, found)
    record_cm = next(iter(_items(found, "adoption_record")), None)
    record = (record_cm or {}).get("data") if record_cm else None
    if s.adopt_force and s.adopt_confirm != source.namespace:
        raise InputError(
            f"Nothing was changed. dify_adopt_force copies again over the data of {s.namespace}: set "
            f"dify_adopt_confirm to the source namespace ({source.namespace}) to confirm."
        )
    holds = [what for read_id, what in (("migration_record", "a migration record"), ("deployments", "Deployments"))
             if (found.get(read_id) or {}).get("resources")]  # fmt: skip
    if not record and holds and not s.adopt_force:
        # The record was deleted (by hand) but Dify runs here already: copying again would write over
        # its live data.
        raise InputError(
            f"Nothing was changed. dify_namespace {s.namespace} holds an installation ({', '.join(holds)}) but no "
            f"adoption record ({names.ADOPTION_RECORD}): copying {source.namespace} again would replace its data. "
            f"To do that on purpose, set dify_adopt_force and dify_adopt_confirm={source.namespace}."
        )
    if record and record.get("state") == "copying" and not s.adopt_force:
        # A copy cut short (the record is written before copying, "copied" once the data is all
        # here and before anything uses it): nothing used the copied data yet, copy again.
        copy = ["database"] + [what for what in ("files", "plugins", "weaviate") if getattr(source, what)]
        notices.append(f"The copy from {record.get('source')} started at {record.get('started')} was cut short: "
                       "it is made again (nothing used the new data yet).")  # fmt: skip
    elif record and not s.adopt_force:
        copy: list[str] = []
        notices.append(
            f"Already adopted from {record.get('source')} at {record.get('time')} (ConfigMap "
            f"{names.ADOPTION_RECORD}): nothing is copied again (dify_adopt_force with dify_adopt_confirm="
            f"{source.namespace} would)."
        )
    else:
        copy = ["database"] + [what for what in ("files", "plugins", "weaviate") if getattr(source, what)]
    given: dict[str, Any] = {var: source.keys[key] for key, var in CARRIED_KEYS.items() if key in source.keys}
    if source.s3:
        given.update(files_storage="s3", s3_endpoint=source.s3["endpoint"], s3_bucket=source.s3["bucket"],
                     s3_region=source.s3["region"] or s.s3_region, s3_access_key=source.s3["access_key"],
                     s3_secret_key=source.s3["secret_key"])  # fmt: skip
    store = dict(source.vector_store)
    if store.get("kind"):
        given["vector_store"] = store.pop("kind")
        given.update({k: v for k, v in store.items() if k != "endpoint"})
    elif store:
        given.update(weaviate.external(store["endpoint"], store["grpc_endpoint"], store["api_key"]))
    return Adoption(source, s.with_values(**given), copy, notices, record)


def _pod(name: str, image: str, security: dict[str, Any], container_security: dict[str, Any],
         mounts: list[dict[str, Any]], volumes: list[dict[str, Any]], command: list[str], env: dict[str, str],
         labels: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    container = {"name": name, "image": image, "command": command,
                 "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                 "securityContext": container_security, "volumeMounts": mounts,
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"cpu": "1", "memory": "1Gi"}}}  # fmt: skip
    spec: dict[str, Any] = {"automountServiceAccountToken": False, "enableServiceLinks": False,
                            "securityContext": dict(security, seccompProfile={"type": "RuntimeDefault"}),
                            "containers": [container], "volumes": volumes}  # fmt: skip
    spec.update(extra or {})
    return {"metadata": {"labels": labels}, "spec": spec}


def model(adoption: Adoption, builder: Any, built: dict[str, Any]) -> dict[str, Any]:
    """The objects and Job pods of the copy, for the adopt entry point's tasks."""
    from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import pod_template
    from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import scripts

    s, source = adoption.settings, adoption.source
    target_claims = {
        "files": names.FILES_PVC,
        "plugins": names.PLUGIN_PVC,
        "weaviate": names.statefulset_claim("weaviate"),
    }
    objects: list[dict[str, Any]] = []
    jobs: dict[str, Any] = {}
    volumes = []
    for what in ("files", "plugins", "weaviate"):
        volume = getattr(source, what)
        if what not in adoption.copy or volume is None:
            continue
        if what == "weaviate" and not weaviate.bundled(s):
            continue
        receiver = f"dify-adopt-receive-{what}"
        volumes.append({"what": what, "receiver": receiver, "sender": f"dify-adopt-send-{what}",
                        "source_claim": volume.claim, "target_claim": target_claims[what]})  # fmt: skip
        port = {"name": "copy", "port": 8000, "targetPort": 8000, "protocol": "TCP"}
        objects.append({
            "apiVersion": "v1", "kind": "Service", "metadata": builder.meta(receiver, names.ADOPT_RECEIVE),
            "spec": {"selector": {"job-name": receiver}, "ports": [port]},
        })  # fmt: skip
        # The receiver writes the files with their owners, as root with exactly what that takes.
        jobs[f"receive_{what}"] = _pod(
            names.JobContainer.ADOPT_RECEIVE, builder.images["api"], {"runAsUser": 0, "runAsGroup": 0},
            {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "FOWNER",
             "DAC_OVERRIDE"]}},
            [{"name": "target", "mountPath": "/target"}],
            [{"name": "target", "persistentVolumeClaim": {"claimName": target_claims[what]}}],
            ["python", "-c", scripts.ADOPT_RECEIVE], {"ADOPT_TIMEOUT": str(s.adopt_timeout)},
            names.labels(names.ADOPT_RECEIVE),
            {"imagePullSecrets": [{"name": n} for n in s.image_pull_secrets]} if s.image_pull_secrets else None,
        )  # fmt: skip
        # The sender reads the source's volume as the user of the workload that writes it (the api's
        # image has Python), next to the pod that mounts it (a ReadWriteOnce volume).
        user = volume.pod_security.get("runAsUser", 1001 if what == "files" else 0)
        security = {"runAsUser": user}
        if "runAsGroup" in volume.pod_security:
            security["runAsGroup"] = volume.pod_security["runAsGroup"]
        extra: dict[str, Any] = {}
        if volume.node:
            extra["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                             "values": [volume.node]}]}]}}}  # fmt: skip
        # As root (the plugin daemon's and Weaviate's default), the right to read any file: DAC_OVERRIDE,
        # which Pod Security baseline allows (DAC_READ_SEARCH it does not); the volume is read-only anyway.
        caps: dict[str, Any] = {"drop": ["ALL"], **({"add": ["DAC_OVERRIDE"]} if user == 0 else {})}
        jobs[f"send_{what}"] = _pod(
            names.JobContainer.ADOPT_SEND, source.image, security,
            {"allowPrivilegeEscalation": False, "capabilities": caps, "readOnlyRootFilesystem": True},
            [{"name": "source", "mountPath": "/source", "readOnly": True}],
            [{"name": "source", "persistentVolumeClaim": {"claimName": volume.claim, "readOnly": True}}],
            ["python", "-c", scripts.ADOPT_SEND],
            {"RECEIVER": f"{receiver}.{s.namespace}.svc", "ADOPT_TIMEOUT": str(s.adopt_timeout)},
            names.labels(names.ADOPT_SEND), extra,
        )  # fmt: skip
    if "weaviate" in adoption.copy and source.weaviate and weaviate.bundled(s):
        # The data volume of the new Weaviate, created before the StatefulSet so the copy lands in it first.
        sts = next(o for o in built["objects"]["data"] if o["kind"] == "StatefulSet"
                   and o["metadata"]["name"] == names.workload("weaviate"))  # fmt: skip
        template = sts["spec"]["volumeClaimTemplates"][0]
        objects.insert(0, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": builder.meta(names.statefulset_claim("weaviate"), "weaviate"),
                           "spec": template["spec"]})  # fmt: skip
    db = source.db
    jobs["db"] = pod_template(
        builder.postgres_pod(),
        container_name=names.JobContainer.ADOPT_DB,
        command=["/bin/sh", "-ec"],
        args=[scripts.ADOPT_DB],
        env={"SOURCE_NAMESPACE": source.namespace, "SOURCE_HOST": db["host"], "SOURCE_PORT": str(db["port"]),
             "SOURCE_USER": db["user"], "SOURCE_DB": db["database"], "SOURCE_PLUGIN_DB": source.plugin_database,
             "WORK": "/work"},
        secret_env={"SOURCE_PASSWORD": (names.ADOPT_SOURCE_SECRET, "DB_PASSWORD")},
        volumes=[{"name": "work", "emptyDir": {}}],
        volume_mounts=[{"name": "work", "mountPath": "/work"}],
    )  # fmt: skip
    if s.network_policies:
        # The copy Jobs' ways across namespaces; pruned by the next run, which no longer renders them.
        src = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": source.namespace}}}
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": builder.meta("dify-adopt-receive", "network-policy"),
                        "spec": {"podSelector": {"matchLabels": names.selector(names.ADOPT_RECEIVE)},
                                 "policyTypes": ["Ingress"],
                                 "ingress": [{"from": [src],
                                              "ports": [{"protocol": "TCP", "port": 8000}]}]}})  # fmt: skip
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": builder.meta("dify-adopt-db", "network-policy"),
                        "spec": {"podSelector": {"matchLabels": names.selector(names.DB_TOOLS)},
                                 "policyTypes": ["Egress"],
                                 "egress": [{"to": [src],
                                             "ports": [{"protocol": "TCP", "port": db["port"]}]}]}})  # fmt: skip
    source_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": builder.meta(names.ADOPT_SOURCE_SECRET,
                     names.DB_TOOLS), "type": "Opaque",
                     "data": {"DB_PASSWORD": base64.b64encode(db["password"].encode()).decode()}}  # fmt: skip
    return {
        "source": source.summary(),
        "to_copy": adoption.copy,
        "volumes": volumes,
        "objects": objects,
        "jobs": jobs,
        "source_secret": source_secret,
        "record": {
            "source": source.namespace,
            "source_release": source.release,
            "release": s.image_tag,
            "helm_release": source.helm_release,
            "copied": ",".join(adoption.copy),
            "source_workloads": json.dumps(source.workloads),
        },
        "previous_record": adoption.record,
        "scale_back": [
            f"kubectl -n {source.namespace} scale {w['kind'].lower()}/{w['name']} --replicas={w['replicas']}"
            for w in source.workloads
        ],
    }
