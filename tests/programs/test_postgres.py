"""The bundled PostgreSQL and the role's day-2 Jobs, for real.

PostgreSQL 15 (Debian's) runs as the StatefulSet dify-postgres asks: its env (POSTGRES_USER,
POSTGRES_DB, PGDATA and the password from the Secret), args, uid/gid 70, its volumes (the data
claim, the init scripts of ConfigMap dify-postgres-init, /var/run/postgresql), with the image's
entrypoint emulated (images/postgres-entrypoint.sh). The backup, restore, password rotation and
status probe Jobs are the ones the role creates: the real playbooks run against the local cluster
(where kwok only pretends to run their pods), then each Job's container, read from the API, runs
here against this PostgreSQL. The tests of this module build on each other, in order.
"""

from __future__ import annotations

import json
import re

import psycopg2
import pytest
from runner import Container, Objects, PodNetwork, StandIn, Volumes, proc_status

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.records import parse_report

SAMPLE_ROWS = 1000
REVISION = "2b6ac9c8b1f7"  # any Alembic revision id; the probe must report what the table holds


@pytest.fixture(scope="module")
def db(install, tmp_path_factory):
    """PostgreSQL as the StatefulSet runs it, on a pod network of this module."""
    work = tmp_path_factory.mktemp("postgres")
    network = PodNetwork(work / "network")
    volumes = Volumes(work / "volumes", install.objects)
    pod = network.pod("dify-postgres-0")
    network.service("dify-postgres", pod)
    container = Container.of(install.objects, "StatefulSet", "dify-postgres", pod, volumes)
    container.start()
    state = Database(install, network, volumes, container)
    try:
        state.wait_ready()
        yield state
    finally:
        for extra in state.started:
            extra.stop()
        container.stop()
        network.close()


class Database:
    def __init__(self, install, network: PodNetwork, volumes: Volumes, container: Container):
        self.install = install
        self.network = network
        self.volumes = volumes
        self.container = container
        self.client = network.pod("dify-api-0")
        env = install.objects.config_map("dify-shared-env")
        self.user, self.database = env["DB_USERNAME"], env["DB_DATABASE"]
        self.plugin_database = env["DB_PLUGIN_DATABASE"]
        self.password = install.objects.secret("dify-credentials")["DB_PASSWORD"]
        self.started: list[Container] = []
        self.facts: dict[str, object] = {}

    def wait_ready(self, timeout: float = 90) -> None:
        import time

        deadline = time.monotonic() + timeout
        while True:
            if not self.container.running():
                raise AssertionError(f"postgres exited:\n{self.container.output}")
            if self.container.probe("readiness").returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"postgres not ready:\n{self.container.output}")
            time.sleep(0.5)

    def connect(self, database: str | None = None, password: str | None = None):
        """A client connection from another pod (over the pod network: password authentication)."""
        with self.client.entered():
            conn = psycopg2.connect(
                host=self.container.pod.ip,
                port=5432,
                user=self.user,
                password=self.password if password is None else password,
                dbname=database or self.database,
                connect_timeout=10,
            )
        conn.autocommit = True
        return conn

    def query(self, sql: str, database: str | None = None):
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None

    def run_job(self, job: dict, pod_name: str, objects: Objects | None = None) -> Container:
        """The Job's container as its pod would run it; returns it after it finished."""
        pod = self.network.pod(pod_name)
        container = Container.of(objects or self.install.objects, "Job", job, pod, self.volumes)
        self.started.append(container.start())
        container.wait(300)
        return container


def fingerprint(db: Database) -> dict[str, tuple[int, str]]:
    """Row count and checksum of the sample tables of both databases."""
    sql = "select count(*), md5(coalesce(string_agg(t::text, ',' order by id), '')) from {} t"
    return {
        "apps": tuple(db.query(sql.format("apps"))[0]),
        "plugins": tuple(db.query(sql.format("plugins"), db.plugin_database)[0]),
    }


def test_postgres_is_initialised_as_the_statefulset_asks(db: Database):
    status = proc_status(db.container.pid)
    assert status["Uid"].split()[0] == "70" and status["Gid"].split()[0] == "70"
    # POSTGRES_USER, POSTGRES_DB and the password of the Secret; the init script's database.
    assert db.query("select current_user, current_database()") == [(db.user, db.database)]
    databases = {r[0] for r in db.query("select datname from pg_database")}
    assert {db.database, db.plugin_database} <= databases
    assert "PostgreSQL init process complete" in db.container.stdout.text
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        db.connect(password="not-the-password")
    # The rendered args reach the server.
    args = db.install.objects.get("StatefulSet", "dify-postgres")["spec"]["template"]["spec"]["containers"][0]["args"]
    wanted = dict(a.split("=", 1) for a in args if "=" in a)
    assert db.query("show max_connections") == [(wanted["max_connections"],)]


def test_the_probes_as_rendered_succeed(db: Database):
    for kind in ("readiness", "liveness"):
        result = db.container.probe(kind)
        assert result.returncode == 0, (kind, result.stdout, result.stderr)
        assert "accepting connections" in result.stdout


def test_the_backup_job_dumps_both_databases(db: Database):
    db.query("create table apps (id serial primary key, name text not null, created timestamptz default now())")
    db.query(f"insert into apps (name) select 'app-' || g from generate_series(1, {SAMPLE_ROWS}) g")
    db.query("create table alembic_version (version_num varchar(32) primary key)")
    db.query(f"insert into alembic_version values ('{REVISION}')")
    db.query("create table plugins (id serial primary key, plugin_id text not null)", db.plugin_database)
    db.query("insert into plugins (plugin_id) select 'p-' || g from generate_series(1, 100) g", db.plugin_database)
    db.facts["before"] = fingerprint(db)

    # An upgrade of existing data: the role backs up before it migrates.
    db.install.playbook("site.yml", dify_image_tag="1.11.5")
    backup = db.run_job(db.install.job("dify-db-backup"), "dify-db-backup-abcde")
    assert backup.proc.returncode == 0, backup.output
    report = parse_report(backup.stdout.text)
    name = report["backup"]
    assert re.fullmatch(r"dify_1\.11\.4_to_1\.11\.5_\d{8}T\d{6}Z", name), name
    assert report["removed"] == []
    files = sorted(p.name for p in db.volumes.claims["dify-backups"].iterdir())
    assert files == [f"{name}.dify.dump", f"{name}.dify_plugin.dump"]
    for f in db.volumes.claims["dify-backups"].iterdir():
        assert f.read_bytes()[:5] == b"PGDMP", f"{f.name} is not a pg_dump archive"
        assert f.stat().st_uid == 70
    db.facts["backup"] = name


def test_the_restore_job_restores_into_an_emptied_database(db: Database):
    name = db.facts.get("backup")
    assert name, "needs the backup of the test before"
    # After the upgrade the newer release added a table and changed data: a restore must leave
    # neither (pg_restore --clean alone would keep the new table, and the next upgrade would fail
    # with "relation already exists").
    db.query("create table newer_release_table (id serial primary key)")
    db.query("delete from apps where id % 2 = 0")
    db.query("create table plugin_newer (id int)", db.plugin_database)

    # The backup Job ran here, after the playbook (kwok ran none), so the role's backup record could
    # not learn its name: the version is given, as a user restoring an unrecorded dump does.
    db.install.playbook("playbooks/restore.yml", dify_restore_backup=name, dify_restore_confirm=db.install.namespace,
                        dify_restore_image_tag="1.11.4")  # fmt: skip
    restore = db.run_job(db.install.job("dify-db-restore"), "dify-db-restore-abcde")
    assert restore.proc.returncode == 0, restore.output
    assert parse_report(restore.stdout.text) == {"restored": name}
    assert fingerprint(db) == db.facts["before"]
    tables = {row[0] for row in db.query("select tablename from pg_tables where schemaname = 'public'")}
    assert "newer_release_table" not in tables and "apps" in tables
    assert db.query("select count(*) from pg_tables where tablename = 'plugin_newer'", db.plugin_database) == [(0,)]
    assert db.query("select version_num from alembic_version") == [(REVISION,)]


def test_the_status_probe_reports_the_tables_and_the_alembic_revision(db: Database):
    plugin_daemon = StandIn(db.network.pod("dify-plugin-daemon-0"), 5002, "plugin-daemon")
    db.network.service("dify-plugin-daemon", db.network.pods["dify-plugin-daemon-0"])
    try:
        run = db.install.cluster.kubectl("delete", "job", "dify-status-probe", "-n", db.install.namespace,
                                         "--ignore-not-found", "--wait=true")  # fmt: skip
        assert run.returncode == 0
        # The playbook reports a failure (kwok runs no probe, so it printed nothing); the Job is real.
        from cluster_fixtures import run_playbook

        run_playbook(db.install.cluster, "playbooks/status.yml", {"dify_namespace": db.install.namespace})
        probe = db.run_job(db.install.job("dify-status-probe"), "dify-status-probe-abcde")
    finally:
        plugin_daemon.close()
    assert probe.proc.returncode == 0, probe.output
    line = next(line for line in probe.stdout.lines if line.startswith("DIFY_REPORT "))
    report = json.loads(line.split(" ", 1)[1])
    tables = db.query("select count(*) from pg_tables where schemaname = 'public'")[0][0]
    assert report["tables"] == tables >= 2
    assert report["alembic_revision"] == REVISION
    assert report["plugin_daemon"]["status"] == 200
    assert [r.path for r in plugin_daemon.requests] == ["/health/check"]


def test_the_rotation_job_changes_the_password(db: Database):
    new = "Rotated-db-password-42"
    db.install.playbook("site.yml", dify_image_tag="1.11.5", dify_db_password=new, dify_rotate_db_password=True)
    job = db.install.job("dify-db-password-rotation")
    # The role deletes the Secret that handed the new password to the Job once the Job is done;
    # here it is put back with the value the role was given.
    handover = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "dify-db-password-rotation"},
        "stringData": {"NEW_PASSWORD": new},
    }
    rotation = db.run_job(job, "dify-db-password-rotation-abcde", db.install.objects.plus(handover))
    assert rotation.proc.returncode == 0, rotation.output
    assert f"password of {db.user} changed" in rotation.stdout.text
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        db.connect()  # the old password
    assert db.connect(password=new).closed == 0


def test_a_rotation_cut_short_after_alter_user_finishes_when_the_job_runs_again(db: Database):
    """The run stopped after ALTER USER, before the Secret changed: the next run's rotation Job
    (with the same pending password) finds the new password works and changes nothing."""
    new = "Rotated-db-password-42"  # the previous test's rotation, ALTER USER done
    job = db.install.job("dify-db-password-rotation")
    handover = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dify-db-password-rotation"},
                "stringData": {"NEW_PASSWORD": new}}  # fmt: skip
    again = db.run_job(job, "dify-db-password-rotation-fghij", db.install.objects.plus(handover))
    assert again.proc.returncode == 0, again.output
    assert parse_report(again.stdout.text) == {"rotated": "already"}
    assert db.connect(password=new).closed == 0
