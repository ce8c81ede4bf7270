# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL, the database (bundled with dify_postgres_enabled, else dify_db_host), and the pod
of the database tools Jobs (backup, restore, password rotation), which runs its image."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    STATEFULSET,
    Component,
    Port,
    Workload,
    secret_ref,
    shell,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, Settings

# uid 70 is "postgres" in the alpine image.
POSTGRES_USER = {"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70, "runAsNonRoot": True}


def server(c: Component, b: Any, *, user: str, password_key: str, database: str, init: str, storage_size: str,
           pod_security: dict[str, Any], args: list[str] | None = None,
           data_path: str = "/var/lib/postgresql/data") -> Workload:  # fmt: skip
    """A PostgreSQL server of the official image (the bundled database, the bundled pgvector): its
    user, password (a key of the credentials), database, an init ConfigMap run once on a new data
    volume, and probes that ask the server itself."""
    pg_ready = 'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    return c.workload(
        b,
        **({"args": args} if args else {}),
        env=[
            {"name": "POSTGRES_USER", "value": user},
            secret_ref("POSTGRES_PASSWORD", password_key),
            {"name": "POSTGRES_DB", "value": database},
            {"name": "PGDATA", "value": data_path + "/pgdata"},
        ],
        readiness=shell(pg_ready, periodSeconds=5),
        liveness=shell(pg_ready, periodSeconds=30, failureThreshold=6),
        data_path=data_path,
        data_size=storage_size,
        volumes=[
            {"name": "init", "configMap": {"name": init}},
            {"name": "run", "emptyDir": {}},
        ],
        mounts=[
            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
        ],
        pod_security=dict(pod_security),
    )


def _postgres(c: Component, b: Any) -> Workload:
    s = b.s
    return server(c, b, user=s.db_username, password_key="DB_PASSWORD", database=s.db_database,
                  init=names.POSTGRES_INIT, storage_size=s.postgres_storage_size, pod_security=POSTGRES_USER,
                  args=["postgres", "-c", f"max_connections={s.postgres_max_connections}"])  # fmt: skip


def config_maps(b: Any) -> list[dict[str, Any]]:
    """Runs once, when the data volume is initialised: the plugin daemon's own database."""
    if not POSTGRES.runs(b.s, b.release):
        return []
    sql = f'CREATE DATABASE "{b.s.db_plugin_database}";\n'
    return [b.config_map(names.POSTGRES_INIT, "postgres", {"10-plugin-database.sql": sql})]


def tools_pod(b: Any) -> dict[str, Any]:
    """The pod of the database tools Jobs (backup, restore, password rotation): the PostgreSQL
    image as its postgres user, with the connection settings of the shared environment."""
    w = Workload(
        name=names.DB_TOOLS,
        resources="tools",
        image=b.images["postgres"],
        env_from=[{"configMapRef": {"name": names.SHARED_ENV}}],
        env=[secret_ref("PGPASSWORD", "DB_PASSWORD")],
        pod_security=dict(POSTGRES_USER),
    )
    return {
        "metadata": {"labels": names.labels(names.DB_TOOLS)},
        "spec": b.pod_spec(w.pod_security, [b.container(w)], []),
    }


def checks(s: Settings) -> list[str]:
    """An external database needs its host and password."""
    if s.bundled(DATABASE):
        return []
    return [message for ok, message in (
        (bool(s.db_host), "dify_postgres_enabled is false, so dify_db_host (the external PostgreSQL server) is "
                          "required."),
        (bool(s.db_password), "dify_postgres_enabled is false, so dify_db_password (the external server's password) "
                              "is required."),
    ) if not ok]  # fmt: skip


POSTGRES = Component(
    name="postgres",
    kind=STATEFULSET,
    pod=_postgres,
    image="postgres",
    ports=(Port("postgres", 5432, DATABASE),),
    default_resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    checks=checks,
)
