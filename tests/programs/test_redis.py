"""The bundled Redis: Debian's redis-server 7 with the StatefulSet's command, args and password,
as uid 999 (runAsUser); its probe as rendered; clients with the api's and beat's settings (the
rendered ConfigMap dify-shared-env and Secret dify-credentials) connect from their own pods."""

from __future__ import annotations

import time

import pytest
from runner import Container, proc_status, wait_for_port

# The api image's programs are not available: its containers run this check with the api's
# environment and user instead (python with the redis client, as the image has it).
API_SETTINGS_CHECK = """
import os, redis
kwargs = dict(host=os.environ["REDIS_HOST"], port=int(os.environ["REDIS_PORT"]), db=int(os.environ["REDIS_DB"]),
              username=os.environ.get("REDIS_USERNAME") or None, password=os.environ["REDIS_PASSWORD"],
              ssl=os.environ["REDIS_USE_SSL"] == "true", socket_timeout=5)
assert redis.Redis(**kwargs).ping()
broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"], socket_timeout=5)
assert broker.ping()
broker.set("dify-ce-test", "ok")
print("connected", broker.connection_pool.connection_kwargs["db"])
"""


@pytest.fixture
def redis_server(objects, network, volumes, containers):
    pod = network.pod("dify-redis-0")
    network.service("dify-redis", pod)
    container = Container.of(objects, "StatefulSet", "dify-redis", pod, volumes)
    containers.append(container.start())
    wait_for_port(pod, 6379, container)
    return container


def test_redis_runs_as_rendered_and_its_probe_works(redis_server, volumes):
    status = proc_status(redis_server.pid)
    assert status["Name"] == "redis-server"
    assert status["Uid"].split()[0] == "999" and status["Gid"].split()[0] == "999"
    assert status["CapEff"] == "0000000000000000" and status["NoNewPrivs"] == "1"
    for kind in ("readiness", "liveness"):
        result = redis_server.probe(kind)
        assert result.returncode == 0, (kind, result.stdout, result.stderr)
    # Without the password (REDISCLI_AUTH) it refuses.
    refused = redis_server.exec(["/bin/sh", "-c", "REDISCLI_AUTH= redis-cli ping"])
    assert "NOAUTH" in refused.stdout + refused.stderr
    # --appendonly yes --dir /data: the append-only file is on the data claim, as uid 999.
    deadline = time.monotonic() + 10
    data = volumes.claims["data-dify-redis-0"]
    while not any(data.rglob("*.aof")) and time.monotonic() < deadline:
        time.sleep(0.2)
    aof = list(data.rglob("*.aof"))
    assert aof and all(p.stat().st_uid == 999 for p in aof), list(data.rglob("*"))


def test_clients_with_the_api_settings_connect(redis_server, objects, network, volumes, containers):
    for deployment in ("dify-api", "dify-worker"):
        client = Container.of(
            objects, "Deployment", deployment, network.pod(f"{deployment}-0"), volumes,
            command=["python", "-c", API_SETTINGS_CHECK],
        )  # fmt: skip
        containers.append(client.start())
        assert client.wait(60) == 0, client.output
        assert client.stdout.text.strip() == "connected 1", client.output  # the broker's database
    check = redis_server.exec(["redis-cli", "-n", "1", "get", "dify-ce-test"])
    assert check.stdout.strip() == "ok"


def test_the_beat_liveness_probe_as_rendered_reaches_the_broker(redis_server, objects, network, volumes, containers):
    beat = Container.of(
        objects, "Deployment", "dify-beat", network.pod("dify-beat-0"), volumes, command=["sleep", "infinity"]
    )
    containers.append(beat.start())
    beat.pid  # noqa: B018 - until it runs
    result = beat.probe("liveness")
    assert result.returncode == 0, (result.stdout, result.stderr)
    redis_server.stop()
    result = beat.probe("liveness")
    assert result.returncode != 0, "the probe must fail when the broker is gone"
