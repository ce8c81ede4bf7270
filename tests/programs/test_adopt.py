"""Adopting for real: the copy Jobs of playbooks/adopt.yml run as processes.

The hand-made fixture (PostgreSQL 15 with `dify` and `dify_plugin`, files and plugins on volumes) is
applied to the local cluster and adopted by the real playbook; kwok only pretends to run the copy
Jobs. Then, here: the source's PostgreSQL runs from the fixture's own StatefulSet and the new one
from the StatefulSet the role created; the database Job, read from the API, dumps the one into the
other; each volume's receiver and sender Jobs stream a volume of the source into the new one.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg2
import pytest
import yaml
from cluster_fixtures import ADOPTION_FIXTURES, Cluster, install_adoption_source, run_playbook
from runner import Container, Objects, PodNetwork, Volumes, tree

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.records import parse_report

ROWS = 500
SOURCE_STORAGE = {"files": "dify-api-storage", "plugins": "dify-plugin-storage"}


class Side:
    """One namespace's objects and volumes, and its PostgreSQL once started."""

    def __init__(self, namespace: str, objects: Objects, volumes: Volumes):
        self.namespace = namespace
        self.objects = objects
        self.volumes = volumes
        self.postgres: Container | None = None


def live_objects(cluster: Cluster, namespace: str) -> Objects:
    kinds = "configmaps,secrets,statefulsets,deployments,jobs"
    return Objects(yaml.safe_load(cluster.kubectl("get", kinds, "-n", namespace, "-o", "yaml").stdout)["items"])


@pytest.fixture(scope="module")
def adoption(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("adopt")
    source_ns = f"t-adopt-source-{uuid.uuid4().hex[:5]}"
    target_ns = f"{source_ns}-new"
    cluster.kubectl("create", "namespace", source_ns)
    install_adoption_source(cluster, source_ns, "handmade")
    run = run_playbook(cluster, "playbooks/adopt.yml", {"dify_adopt_namespace": source_ns, "dify_namespace": target_ns})
    # kwok runs no probe, so the final status check fails; every step before it is what is tested.
    assert not run.result("Dump the source's databases and restore them here").get("failed"), run.stdout[-4000:]
    assert not run.result("Apply the application and wait for the rollout").get("failed"), run.stdout[-4000:]

    fixture_docs = yaml.safe_load((ADOPTION_FIXTURES / "handmade.yaml").read_text())["items"]
    source = Side(source_ns, Objects(fixture_docs).plus(*live_objects(cluster, source_ns).docs),
                  Volumes(work / "source", Objects(fixture_docs)))  # fmt: skip
    target_objects = live_objects(cluster, target_ns)
    # The short-lived Secret that handed the source's password to the Job is gone once it ran; it
    # held DB_PASSWORD, what the source's api has.
    password = Objects(fixture_docs).secret("dify-secrets")["db-password"]
    target_objects = target_objects.plus(
        {"kind": "Secret", "metadata": {"name": "dify-adopt-source"}, "stringData": {"DB_PASSWORD": password}}
    )
    target = Side(target_ns, target_objects, Volumes(work / "target", target_objects))
    network = PodNetwork(work / "network")
    state = {"source": source, "target": target, "network": network, "password": password, "started": []}
    try:
        source.postgres = Container.of(source.objects, "StatefulSet", "dify-postgres",
                                       network.pod("source-postgres-0"), source.volumes).start()  # fmt: skip
        network.service(f"dify-postgres.{source_ns}.svc", source.postgres.pod)
        target.postgres = Container.of(target.objects, "StatefulSet", "dify-postgres",
                                       network.pod("dify-postgres-0"), target.volumes).start()  # fmt: skip
        network.service("dify-postgres", target.postgres.pod)
        for side in (source, target):
            wait_accepting(side.postgres)
        yield state
    finally:
        for container in [*state["started"], source.postgres, target.postgres]:
            if container:
                container.stop()
        network.close()
        if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
            for ns in (source_ns, target_ns):
                cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def wait_accepting(container: Container, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while container.exec(["pg_isready", "-h", "127.0.0.1", "-U", "postgres"]).returncode != 0:
        assert container.running(), container.output
        assert time.monotonic() < deadline, f"postgres not ready:\n{container.output}"
        time.sleep(0.5)


def query(state: dict, side: str, database: str, sql: str):
    """As a client pod of the network: the source's superuser, or the new install's user."""
    container = state[side].postgres
    if side == "source":
        user, password = "postgres", state["password"]
    else:
        env = state["target"].objects.config_map("dify-shared-env")
        user, password = env["DB_USERNAME"], state["target"].objects.secret("dify-credentials")["DB_PASSWORD"]
    with state["network"].pod("client-0").entered():
        conn = psycopg2.connect(host=container.pod.ip, port=5432, user=user, password=password, dbname=database,
                                connect_timeout=10)  # fmt: skip
    conn.autocommit = True  # (no `with conn`: that opens a transaction, where CREATE DATABASE may not run)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def fingerprint(state: dict, side: str, database: str, table: str) -> tuple[int, str]:
    sql = f"select count(*), md5(coalesce(string_agg(t::text, ',' order by id), '')) from {table} t"
    return tuple(query(state, side, database, sql)[0])


def run_job(state: dict, side: Side, name: str, pod: str) -> Container:
    job = side.objects.get("Job", name)
    container = Container.of(side.objects, "Job", job, state["network"].pod(pod), side.volumes).start()
    state["started"].append(container)
    return container


def test_the_database_job_copies_both_databases(adoption):
    query(adoption, "source", "dify", "create database dify_plugin")
    tables = {"dify": "apps", "dify_plugin": "plugin_installations"}
    for database, table in tables.items():
        query(
            adoption,
            "source",
            database,
            f"create table {table} (id serial primary key, name text not null, meta jsonb default '{{}}')",
        )
        query(adoption, "source", database,
              f"insert into {table} (name, meta) select '{table}-' || g, jsonb_build_object('n', g) "
              f"from generate_series(1, {ROWS}) g")  # fmt: skip
    before = {db: fingerprint(adoption, "source", db, t) for db, t in tables.items()}

    job = run_job(adoption, adoption["target"], "dify-adopt-db", "dify-adopt-db-abcde")
    assert job.wait(300) == 0, job.output
    env = adoption["target"].objects.config_map("dify-shared-env")
    assert f"copied dify -> {env['DB_DATABASE']}, dify_plugin -> {env['DB_PLUGIN_DATABASE']}" in job.stdout.text
    assert parse_report(job.stdout.text) == {"copied": "databases"}
    after = {db: fingerprint(adoption, "target", env[var], tables[db])
             for db, var in (("dify", "DB_DATABASE"), ("dify_plugin", "DB_PLUGIN_DATABASE"))}  # fmt: skip
    assert after == before and before["dify"][0] == ROWS
    # Copy, never move: the source still has every row.
    assert {db: fingerprint(adoption, "source", db, t) for db, t in tables.items()} == before


@pytest.mark.parametrize("what", ["files", "plugins"])
def test_a_volume_is_streamed_into_the_new_one_with_owners_and_modes(adoption, what):
    source, target = adoption["source"], adoption["target"]
    claim = source.volumes.claim(SOURCE_STORAGE[what])
    # What Dify keeps there: the workspace's RSA key under privkeys/, uploads, an installed plugin.
    (claim / "privkeys" / "tenant-1").mkdir(parents=True)
    (claim / "privkeys" / "tenant-1" / "private.pem").write_bytes(os.urandom(1700))
    (claim / "privkeys" / "tenant-1" / "private.pem").chmod(0o600)
    (claim / "upload_files").mkdir()
    (claim / "upload_files" / "report.pdf").write_bytes(os.urandom(300_000))
    (claim / "upload_files" / "empty").write_bytes(b"")
    for path in [claim / "privkeys", *claim.rglob("*")]:
        os.chown(path, 1001, 1001)
    before = tree(claim)

    receiver = run_job(adoption, target, f"dify-adopt-receive-{what}", f"receive-{what}-abcde")
    adoption["network"].service(f"dify-adopt-receive-{what}.{target.namespace}.svc", receiver.pod)
    sender = run_job(adoption, source, f"dify-adopt-send-{what}", f"send-{what}-abcde")
    assert sender.wait(120) == 0, sender.output
    assert receiver.wait(120) == 0, receiver.output
    assert parse_report(receiver.stdout.text) == {"received": len(before)}
    assert parse_report(sender.stdout.text) == {"sent": len(os.listdir(claim))}
    target_claim = target.objects.get("Job", f"dify-adopt-receive-{what}")["spec"]["template"]["spec"]["volumes"][0]
    assert tree(target.volumes.claims[target_claim["persistentVolumeClaim"]["claimName"]]) == before
    assert tree(claim) == before, "the source volume was changed"
