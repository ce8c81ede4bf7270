"""The copy of Weaviate's volume before its image changes, for real.

An installation of 1.16.1 (Weaviate 1.27.0) is upgraded to 1.17.1 (Weaviate 1.39.2) by the real
playbook; kwok only pretends to run the copy Job. Here the Job's container, read from the API, runs
with its user, groups and volumes: Weaviate's volume as Weaviate leaves it (uid 1000, fsGroup 1000),
mounted read-only, and the backups volume as the database backups left it (fsGroup 70). Debian's
GNU tar stands in for the busybox tar of the postgres (alpine) image.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import Cluster, run_playbook
from runner import Container, Objects, PodNetwork, Volumes, apply_fs_group, tree

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.records import parse_report

WEAVIATE_CLAIM = "data-dify-weaviate-0"


@pytest.fixture(scope="module")
def copy_job(cluster: Cluster):
    namespace = f"t-weaviate-copy-{uuid.uuid4().hex[:5]}"
    for version in ("1.16.1", "1.17.1"):
        run = run_playbook(cluster, "site.yml", {"dify_namespace": namespace, "dify_image_tag": version})
        assert run.rc == 0, run.stdout[-3000:]
    kinds = "configmaps,secrets,jobs"
    objects = Objects(yaml.safe_load(cluster.kubectl("get", kinds, "-n", namespace, "-o", "yaml").stdout)["items"])
    yield objects, objects.get("Job", "dify-weaviate-backup")
    if not os.environ.get("DIFY_CE_KEEP_NAMESPACES"):
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def volumes(tmp_path: Path, copy_job) -> Volumes:
    """Weaviate's data (a schema, a class's segments, an empty file) and the backups volume."""
    objects, _job = copy_job
    vols = Volumes(tmp_path / "volumes", objects)
    data = vols.claim(WEAVIATE_CLAIM)
    (data / "schema.db").write_bytes(os.urandom(40_000))
    segments = data / "document_abc" / "lsm" / "objects"
    segments.mkdir(parents=True)
    (segments / "segment-1.db").write_bytes(os.urandom(250_000))
    (segments / "segment-1.db").chmod(0o600)
    (data / "raft.db").write_bytes(b"")
    for path in [data, *data.rglob("*")]:
        os.chown(path, 1000, 1000)
    apply_fs_group(data, 1000)  # Weaviate's pod has fsGroup 1000
    backups = vols.claim("dify-backups")
    (backups / "dify_1.16.1_to_1.17.1_20261201T000000Z.dify.dump").write_bytes(b"dump")
    apply_fs_group(backups, 70)  # what the database tools' pods (fsGroup 70) left
    return vols


def archived(archive: Path) -> dict[str, tuple]:
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            if name == ".":
                continue
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            kind = 0o100000 if member.isfile() else 0o040000
            digest = hashlib.sha256(data).hexdigest() if member.isfile() else ""
            out[name] = (member.uid, member.gid, oct(kind | member.mode), digest)
    return out


def run(copy_job, volumes: Volumes, tmp_path: Path) -> Container:
    objects, job = copy_job
    network = PodNetwork(tmp_path / "network")
    try:
        container = Container.of(objects, "Job", job, network.pod("dify-weaviate-backup-abcde"), volumes).start()
        container.wait(120)
        return container
    finally:
        network.close()


def test_the_copy_holds_every_file_with_its_owner_mode_and_bytes_and_leaves_the_volume_alone(
    copy_job, volumes, tmp_path
):
    data, backups = volumes.claims[WEAVIATE_CLAIM], volumes.claims["dify-backups"]
    before = tree(data)
    copy = run(copy_job, volumes, tmp_path)
    assert copy.proc.returncode == 0, copy.output
    names = [parse_report(copy.stdout.text)["copy"]]
    assert re.fullmatch(r"weaviate_1\.27\.0_\d{8}T\d{6}Z", names[0]), copy.output
    archive = backups / "weaviate" / f"{names[0]}.tar.gz"
    assert archive.is_file()
    assert [p.name for p in (backups / "weaviate").iterdir()] == [archive.name], "no partial copy left"
    # Created by Weaviate's user in the directory of group 70 (setgid): the database tools read it.
    st = archive.stat()
    assert (st.st_uid, st.st_gid) == (1000, 70) and st.st_mode & 0o004
    assert archived(archive) == before
    assert tree(data) == before, "the Weaviate volume is mounted read-only and left as it was"
    assert (backups / "dify_1.16.1_to_1.17.1_20261201T000000Z.dify.dump").read_bytes() == b"dump"


def test_only_the_newest_copies_are_kept(copy_job, volumes, tmp_path):
    backups = volumes.claims["dify-backups"]
    (backups / "weaviate").mkdir()
    os.chown(backups / "weaviate", 1000, 70)
    old = []
    for day in range(1, 6):  # dify_backup_keep: 5, so the oldest of these goes
        path = backups / "weaviate" / f"weaviate_1.26.0_2026010{day}T000000Z.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            tar.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
        os.utime(path, (1767225600 + day * 86400,) * 2)
        old.append(path.name)
    copy = run(copy_job, volumes, tmp_path)
    assert copy.proc.returncode == 0, copy.output
    assert parse_report(copy.stdout.text)["removed"] == ["weaviate_1.26.0_20260101T000000Z"]
    kept = sorted(p.name for p in (backups / "weaviate").iterdir())
    assert len(kept) == 5 and old[0] not in kept and set(old[1:]) <= set(kept)


def test_a_copy_that_fails_stops_the_job_and_leaves_no_partial_archive(copy_job, volumes, tmp_path):
    unreadable = volumes.claims[WEAVIATE_CLAIM] / "document_abc" / "lsm" / "objects" / "segment-1.db"
    os.chown(unreadable, 0, 0)  # Weaviate's user can no longer read it
    copy = run(copy_job, volumes, tmp_path)
    assert copy.proc.returncode != 0, copy.output
    assert "Permission denied" in copy.output
    assert parse_report(copy.stdout.text) is None
    assert list((volumes.claims["dify-backups"] / "weaviate").iterdir()) == []
