"""The SSRF proxy: Debian's squid with the rendered squid.conf, started exactly as the pod starts
it (the Deployment's command, root dropping to proxy, the capability set, no_new_privs, stdout and
stderr as pipes). Clients are pods on the test's pod network; "the internet" is a stand-in with a
public (documentation, TEST-NET-3) address, the cloud metadata service one at 169.254.169.254."""

from __future__ import annotations

import time

import pytest
from runner import (
    ClusterDNS,
    Container,
    StandIn,
    Volumes,
    capability_names,
    http_request,
    proc_status,
    wait_for_port,
)

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
    # Dify's ports (80 21 443 70 210 1025-65535 280 488 591 777): an API on 8080 is reached, SMTP's 25 not.
    high_port = StandIn(internet_pod, 8080, "internet-8080")
    other_port = StandIn(internet_pod, 25, "internet-25")
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
        code, _h, body = http_request(client, "http://203.0.113.10:8080/", proxy=proxy_url(container))
        assert code == 200 and b'"internet-8080"' in body, f"port 8080: {code}"
        code, _h, _b = http_request(client, "http://203.0.113.10:25/", proxy=proxy_url(container))
        assert code == 403, f"port 25: {code}"
        assert other_port.requests == []
        code, _h, _b = http_request(client, "203.0.113.10:8443", method="CONNECT", proxy=proxy_url(container))
        assert code == 403, f"CONNECT to 8443: {code}"
    finally:
        for server in [internet, high_port, other_port, *refused.values()]:
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


# --------------------------------------------------------------------------- names as Kubernetes resolves them
# The pods' resolv.conf as the kubelet writes it (the namespace's search list, ndots:5) and a DNS
# server that knows the Services only by their full names, as the cluster's DNS does: squid must
# find dify-sandbox, dify-agent-backend and dify-api by the names the model renders. (Before
# dns_defnames, the cache peer and the agent stub and /files answered 502/503.)
NAMESPACE = "dify"
# The newest release with the SSRF proxy's sandbox port, and one with the agent's SSRF proxy.
SANDBOX_PORT_RELEASE = "1.14.2"
AGENT_PROXY_RELEASE = "1.17.1"


def start_squid(objects, network, root, containers, deployment: str, pod_name: str = "") -> Container:
    """squid of a Deployment of ``objects`` (their ConfigMaps mounted), in a pod of its own."""
    pod = network.pod(pod_name or f"{deployment}-0")
    container = Container.of(objects, "Deployment", deployment, pod, Volumes(root / pod.name, objects))
    containers.append(container.start())
    wait_for_port(pod, 3128, container, timeout=60)
    return container


def without_dns_defnames(objects, name: str):
    """The objects with the ConfigMap's squid.conf as it was before dns_defnames (a control)."""
    config = objects.get("ConfigMap", name)
    conf = "\n".join(line for line in config["data"]["squid.conf"].splitlines() if line != "dns_defnames on")
    return objects.replacing(dict(config, data={"squid.conf": conf + "\n"}))


def test_the_ssrf_proxy_reaches_the_sandbox_by_its_service_name(manifests, network, tmp_path, containers):
    objects = manifests(SANDBOX_PORT_RELEASE)
    sandbox = StandIn(network.pod("dify-sandbox-0"), 8194, "sandbox")
    internet = StandIn(network.pod("internet", ip="203.0.113.10"), 80, "internet")
    dns = ClusterDNS(network, NAMESPACE, {"dify-sandbox": network.pods["dify-sandbox-0"]},
                     records={"api.example.com": "203.0.113.10"})  # fmt: skip
    try:
        container = start_squid(objects, network, tmp_path, containers, "dify-ssrf-proxy")
        wait_for_port(container.pod, 8194, container)
        client = network.pod("dify-api-0")
        code, _h, body = http_request(client, f"http://{container.pod.ip}:8194/health")
        assert code == 200 and b'"sandbox"' in body, (code, body, container.output)
        assert f"dify-sandbox.{NAMESPACE}.svc.cluster.local" in dns.queries
        # A public name is still found (after the search list's names fail), and reached.
        code, _h, body = http_request(client, "http://api.example.com/v1/models", proxy=proxy_url(container))
        assert code == 200 and b'"internet"' in body, (code, body)
    finally:
        for server in (sandbox, internet, dns):
            server.close()


@pytest.mark.parametrize("control", [False, True], ids=["rendered", "without-dns-defnames"])
def test_the_agent_ssrf_proxy_reaches_the_agent_stub_and_files_by_their_service_names(
    manifests, network, tmp_path, containers, control
):
    objects = manifests(AGENT_PROXY_RELEASE)
    if control:
        objects = without_dns_defnames(objects, "dify-agent-ssrf-proxy")
    backend = StandIn(network.pod("dify-agent-backend-0"), 5050, "agent-backend")
    api = StandIn(network.pod("dify-api-0"), 5001, "api")
    dns = ClusterDNS(network, NAMESPACE, {"dify-agent-backend": network.pods["dify-agent-backend-0"],
                                          "dify-api": network.pods["dify-api-0"]})  # fmt: skip
    try:
        container = start_squid(objects, network, tmp_path, containers, "dify-agent-ssrf-proxy")
        client = network.pod("dify-agent-local-sandbox-0")
        proxy = proxy_url(container)
        # The URLs the local sandbox is handed: DIFY_AGENT_STUB_API_BASE_URL and the api's files.
        stub = objects.get("Deployment", "dify-agent-backend")["spec"]["template"]["spec"]["containers"][0]["env"]
        stub_url = next(e["value"] for e in stub if e["name"] == "DIFY_AGENT_STUB_API_BASE_URL")
        files_url = objects.config_map("dify-shared-env")["INTERNAL_FILES_URL"] + "/files/abc/file-preview"
        got = {}
        for url in (stub_url + "/runs/1", files_url):
            code, _h, body = http_request(client, url, proxy=proxy)
            got[url] = (code, body)
        if control:
            assert all(code in (502, 503) for code, _b in got.values()), got
            assert backend.requests == [] and api.requests == []
            return
        assert [code for code, _b in got.values()] == [200, 200], (got, container.output)
        assert [r.path for r in backend.requests] == ["/agent-stub/runs/1"]
        assert [r.path for r in api.requests] == ["/files/abc/file-preview"]
        # Anything else inside the cluster stays refused, whatever the name.
        code, _h, _b = http_request(client, "http://dify-api:5001/console/api/setup", proxy=proxy)
        assert code == 403 and len(api.requests) == 1
    finally:
        for server in (backend, api, dns):
            server.close()


def test_every_denied_range_is_in_effect_and_difys_ipv4_mapped_one_would_refuse_all_ipv4(
    manifests, network, tmp_path, containers
):
    """squid ignores a range of an ACL that contains another of the same ACL: the rendered
    configuration gives such a range an ACL of its own (::/96 next to ::1/128), so squid warns about
    none. And why dify_ssrf_proxy_denied_cidrs leaves out Dify's ::ffff:0:0/96 (collection.yml,
    squid-ipv4-mapped-range): squid reads it as 0.0.0.0/0; in Dify's list it is ignored next to
    0.0.0.0/8, in effect it refuses every IPv4 destination."""
    objects = manifests(AGENT_PROXY_RELEASE)
    config = objects.get("ConfigMap", "dify-ssrf-proxy")
    first_rule = "http_access deny !Safe_ports\n"
    conf = config["data"]["squid.conf"].replace(
        first_rule, f"acl ipv4_mapped dst ::ffff:0:0/96\nhttp_access deny ipv4_mapped\n{first_rule}"
    )
    assert "ipv4_mapped" in conf
    internet = StandIn(network.pod("internet", ip="203.0.113.10"), 80, "internet")
    client = network.pod("dify-api-0")
    try:
        mapped_objects = objects.replacing(dict(config, data={"squid.conf": conf}))
        variants = (("rendered", objects, 200), ("mapped", mapped_objects, 403))
        for name, variant, want in variants:
            container = start_squid(variant, network, tmp_path, containers, "dify-ssrf-proxy", f"squid-{name}")
            code, _h, _b = http_request(client, "http://203.0.113.10/v1/models", proxy=proxy_url(container))
            assert code == want, (name, code, container.output)
            if name == "rendered":
                assert "is a subnetwork of" not in container.output, container.output
            containers.remove(container)
            container.stop(grace=2)
        assert len(internet.requests) == 1
    finally:
        internet.close()
