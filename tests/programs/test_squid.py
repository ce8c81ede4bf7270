"""The SSRF proxy: Debian's squid with the rendered squid.conf, started exactly as the pod starts
it (the Deployment's command, root dropping to proxy, the capability set, no_new_privs, stdout and
stderr as pipes). Clients are pods on the test's pod network; "the internet" is a stand-in with a
public (documentation, TEST-NET-3) address, the cloud metadata service one at 169.254.169.254."""

from __future__ import annotations

import time

import pytest
from runner import Container, StandIn, capability_names, http_request, proc_status, wait_for_port

PROXY_USER = 13  # "proxy" in Ubuntu (the image) and Debian


@pytest.fixture
def squid(objects, network, volumes, containers):
    pod = network.pod("dify-ssrf-proxy-0")
    network.service("dify-ssrf-proxy", pod)
    sandbox = StandIn(network.pod("dify-sandbox-0"), 8194, "sandbox")
    network.service("dify-sandbox", network.pods["dify-sandbox-0"])
    container = Container.of(objects, "Deployment", "dify-ssrf-proxy", pod, volumes)
    containers.append(container.start())
    for port in (3128, 8194):
        wait_for_port(pod, port, container, timeout=60)
    yield container, sandbox
    sandbox.close()


def test_squid_starts_as_its_pod_runs_it_and_stays_up(squid, network):
    container, _sandbox = squid
    time.sleep(2)
    assert container.running(), container.output
    status = proc_status(container.pid)
    squid_pids = [container.pid, *container_descendants(container)]
    squids = [proc_status(p) for p in squid_pids if proc_status(p)["Name"] == "squid"]
    assert squids, "no squid process"
    # It started as root and serves as proxy (effective uid), with only the granted capabilities.
    assert {s["Uid"].split()[1] for s in squids} == {str(PROXY_USER)}, [s["Uid"] for s in squids]
    assert capability_names(status["CapBnd"]) == container.caps
    assert status["NoNewPrivs"] == "1"
    # Its log reaches the container's output (what `kubectl logs` shows).
    client = network.pod("client")
    internet = StandIn(network.pod("internet", ip="203.0.113.10"), 80, "internet")
    try:
        status_code, _h, _b = http_request(client, "http://203.0.113.10/logged", proxy=proxy_url(container))
        assert status_code == 200
        deadline = time.monotonic() + 10
        while "203.0.113.10/logged" not in container.stdout.text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "203.0.113.10/logged" in container.stdout.text, container.output
    finally:
        internet.close()


def container_descendants(container: Container) -> list[int]:
    from runner import descendants

    return descendants(container.pid)


def proxy_url(container: Container) -> str:
    return f"http://{container.pod.ip}:3128"


def test_squid_proxies_to_the_internet_and_refuses_private_ranges_and_other_ports(squid, network):
    container, _sandbox = squid
    client = network.pod("dify-api-0")
    internet_pod = network.pod("internet", ip="203.0.113.10")
    internet = StandIn(internet_pod, 80, "internet")
    other_port = StandIn(internet_pod, 8080, "internet-8080")
    refused = {
        "metadata": StandIn(network.pod("metadata", ip="169.254.169.254"), 80, "metadata"),
        "intranet": StandIn(network.pod("intranet", ip="192.168.10.10"), 80, "intranet"),
        "cluster": StandIn(network.pod("cluster-service", ip="10.96.0.10"), 80, "cluster"),
        "proxy's loopback": StandIn(container.pod, 80, "loopback", address="127.0.0.1"),
    }
    urls = {
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "intranet": "http://192.168.10.10/",
        "cluster": "http://10.96.0.10/",
        "proxy's loopback": "http://127.0.0.1/",
    }
    try:
        code, _h, body = http_request(client, "http://203.0.113.10/v1/models", proxy=proxy_url(container))
        assert code == 200 and b'"internet"' in body
        for what, url in urls.items():
            code, _h, _b = http_request(client, url, proxy=proxy_url(container))
            assert code == 403, f"{what} ({url}): {code}"
            assert refused[what].requests == [], f"{what} was reached"
        code, _h, _b = http_request(client, "http://203.0.113.10:8080/", proxy=proxy_url(container))
        assert code == 403, f"port 8080: {code}"
        assert other_port.requests == []
        code, _h, _b = http_request(client, "203.0.113.10:8443", method="CONNECT", proxy=proxy_url(container))
        assert code == 403, f"CONNECT to 8443: {code}"
    finally:
        for server in [internet, other_port, *refused.values()]:
            server.close()


def test_squid_forwards_the_sandbox_port_to_the_sandbox(squid, network):
    container, sandbox = squid
    client = network.pod("dify-api-0")
    code, _h, body = http_request(client, f"http://{container.pod.ip}:8194/health")
    assert code == 200 and b'"sandbox"' in body, body
    # A large request (code and inputs of a run) passes whole.
    payload = b"x" * (8 << 20)
    code, _h, _b = http_request(
        client,
        f"http://{container.pod.ip}:8194/v1/sandbox/run",
        method="POST",
        body=payload,
        headers={"Content-Type": "application/json", "X-Api-Key": "k"},
    )
    assert code == 200
    # (squid also asks its cache peer for a cache digest, /squid-internal-periodic/store_digest)
    ours = [r for r in sandbox.requests if not r.path.startswith("/squid-internal")]
    assert [r.path for r in ours] == ["/health", "/v1/sandbox/run"]
    assert ours[-1].body_size == len(payload)


def test_squid_accepts_the_rendered_configuration(objects, network, volumes, containers):
    """squid -k parse, with the container's user and rights: no error, and the directives Dify's
    own configuration needs are in effect."""
    network.service("dify-sandbox", network.pod("dify-sandbox-0"))
    check = Container.of(objects, "Deployment", "dify-ssrf-proxy", network.pod("dify-ssrf-proxy-0"), volumes,
                         command=["squid", "-k", "parse", "-f", "/etc/squid/squid.conf"])  # fmt: skip
    containers.append(check.start())
    assert check.wait(60) == 0, check.output
    parsed = check.stdout.text + check.stderr.text
    assert "ERROR" not in parsed and "FATAL" not in parsed, parsed
    # Large uploads through the proxy (Dify's template sets it: "an error will occur when
    # uploading more than two files" otherwise).
    assert "Processing: client_request_buffer_max_size 100 MB" in parsed, parsed
