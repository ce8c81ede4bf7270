# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration files of nginx and the SSRF proxy (squid), as text."""

from __future__ import annotations

import ipaddress

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# Routes of Dify's docker/nginx/conf.d/default.conf.template to the api.
API_ROUTES = ("/console/api", "/api", "/v1", "/files", "/mcp", "/triggers")
# From Dify 1.15.0 (dify#36348, the Dify CLI): the api's OpenAPI (served when OPENAPI_ENABLED).
OPENAPI_ROUTE = "/openapi"


# The headers of Dify's docker/nginx/proxy.conf. A location with a proxy_set_header of its own
# inherits none of the server's (nginx semantics), so such a location repeats them.
PROXY_HEADERS = (
    "Host $host",
    "X-Forwarded-For $proxy_add_x_forwarded_for",
    "X-Forwarded-Proto $scheme",
    "X-Forwarded-Port $server_port",
)


def _location(path: str, upstream: str, headers: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> str:
    lines = [f"        location {path} {{", f"            proxy_pass {upstream};"]
    if headers:
        lines += [f"            proxy_set_header {h};" for h in (*headers, *PROXY_HEADERS)]
    lines += [f"            {line};" for line in extra]
    return "\n".join([*lines, "        }"]) + "\n"


def nginx_conf(s: Settings, websocket: bool = False, openapi: bool = False) -> str:
    """nginx in front of Dify, with the routes of Dify's docker compose (docker/nginx): /openapi
    where the release routes it (``openapi``), /socket.io/ where the websocket process runs.
    nginx-unprivileged: runs as uid 101, listens on 8080, writes only to /tmp."""
    routes = [*API_ROUTES, OPENAPI_ROUTE] if openapi else list(API_ROUTES)
    locations = "".join(_location(path, "http://dify-api:5001") for path in routes)
    # Plugin endpoints: the daemon builds the hook URL from this header.
    locations += _location("/e/", "http://dify-plugin-daemon:5002", ("Dify-Hook-Url $scheme://$host$request_uri",))
    if websocket:
        # Workflow collaboration (Socket.IO, the websocket process), Dify 1.14.1 and later.
        locations += _location(
            "/socket.io/",
            "http://dify-api-websocket:5001",
            ("Upgrade $http_upgrade", 'Connection "upgrade"'),
            ("proxy_cache_bypass $http_upgrade",),
        )
    locations += _location("/explore", "http://dify-web:3000") + _location("/", "http://dify-web:3000")
    server_headers = "".join(f"    proxy_set_header {h};\n" for h in PROXY_HEADERS)
    return (
        "# nginx in front of Dify, with the routes of Dify's docker compose (docker/nginx).\n"
        "# nginx-unprivileged: runs as uid 101, listens on 8080, writes only to /tmp.\n"
        "worker_processes auto;\n"
        "pid /tmp/nginx.pid;\n"
        "error_log /dev/stderr warn;\n"
        "\n"
        "events {\n"
        "    worker_connections 1024;\n"
        "}\n"
        "\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    access_log /dev/stdout;\n"
        "    sendfile on;\n"
        "    keepalive_timeout 65;\n"
        "    client_max_body_size 100M;\n"
        "    client_body_temp_path /tmp/client_temp;\n"
        "    proxy_temp_path /tmp/proxy_temp;\n"
        "    fastcgi_temp_path /tmp/fastcgi_temp;\n"
        "    uwsgi_temp_path /tmp/uwsgi_temp;\n"
        "    scgi_temp_path /tmp/scgi_temp;\n"
        "\n"
        f"{server_headers}"
        "    proxy_http_version 1.1;\n"
        "    proxy_buffering off;\n"
        "    proxy_read_timeout 3600s;\n"
        "    proxy_send_timeout 3600s;\n"
        "\n"
        "    server {\n"
        "        listen 8080;\n"
        "        server_name _;\n"
        "\n"
        "        location = /healthz {\n"
        "            access_log off;\n"
        '            return 200 "ok\\n";\n'
        "        }\n"
        f"{locations}"
        "    }\n"
        "}\n"
    )


# Where squid logs: files on the logs volume. squid starts as root and drops to its proxy user,
# which may not open the container's stdout and stderr (pipes of root): "FATAL: Cannot open
# '/dev/stdout' for writing". The container's command prints the files (SQUID_COMMAND), as Dify's
# docker/ssrf_proxy/docker-entrypoint.sh does.
SQUID_LOGGING = "access_log stdio:/var/log/squid/access.log\ncache_log /var/log/squid/cache.log\ncache_store_log none\n"
SQUID_COMMAND = [
    "/bin/sh",
    "-c",
    "tail -qF -n 0 /var/log/squid/access.log 2>/dev/null & "
    "tail -qF -n 0 /var/log/squid/cache.log >&2 2>/dev/null & "
    "exec squid -f /etc/squid/squid.conf -NYC 1",
]


def _denied_groups(s: Settings) -> list[tuple[str, list[str]]]:
    """dify_ssrf_proxy_denied_cidrs as squid ACLs (name, ranges): squid ignores a range of an ACL
    that contains another range of the same ACL ("is ignored to keep splay tree searching
    predictable": Dify's ::/96 next to ::1/128), so a range that overlaps one already placed goes
    into an ACL of its own, and every listed range is in effect."""
    groups: list[list[str]] = []
    for cidr in s.ssrf_proxy_denied_cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        for group in groups:
            if not any(net.version == other.version and net.overlaps(other)
                       for other in (ipaddress.ip_network(c, strict=False) for c in group)):  # fmt: skip
                group.append(cidr)
                break
        else:
            groups.append([cidr])
    return [("denied_destinations" + (f"_{i + 1}" if i else ""), group) for i, group in enumerate(groups)]


def _denied(s: Settings) -> str:
    return "".join(f"acl {name} dst {cidr}\n" for name, group in _denied_groups(s) for cidr in group)


def _deny(s: Settings) -> str:
    return "".join(f"http_access deny {name}\n" for name, _group in _denied_groups(s))


# Kubernetes Services are single-label names here (dify-sandbox, dify-api): the pod's resolver
# finds them through the search list of its resolv.conf (<namespace>.svc.cluster.local, ...),
# which squid's own DNS client ignores unless told (squid.conf.documented: dns_defnames). With it,
# squid resolves a name as every other program of the pod does, whatever the namespace and the
# cluster's domain; fully qualified names would have to bake both into the configuration and
# still miss the names the clients' URLs carry (the agent stub, the api's /files).
SQUID_DNS = (
    "# Names as the pod's resolver finds them: through its search list (Kubernetes Services).\ndns_defnames on\n"
)


def _ports(s: Settings) -> str:
    return (
        "# Destination ports (dify_ssrf_proxy_allowed_ports; by default those Dify's squid.conf.template\n"
        "# allows); HTTPS (CONNECT) only to 443.\n"
        f"acl Safe_ports port {' '.join(str(p) for p in s.ssrf_proxy_allowed_ports)}\n"
    )


def squid_conf(s: Settings, sandbox_port: bool = True) -> str:
    """The SSRF proxy (Dify's docker/ssrf_proxy): outbound requests of user code (sandbox) and of
    HTTP nodes and tools (api, worker) go through port 3128; up to Dify 1.14 (``sandbox_port``)
    port 8194 reverse-proxies to the sandbox."""
    deny_rule = (
        "# Never towards the private and special ranges, cloud metadata among them\n"
        "# (dify_ssrf_proxy_denied_cidrs; Dify's template denies the same from 1.15).\n"
        f"{_deny(s)}"
        if s.ssrf_proxy_denied_cidrs
        else ""
    )
    accel = (
        "http_port 8194 accel vhost name=sandbox_accel\n"
        "cache_peer dify-sandbox parent 8194 0 no-query originserver name=sandbox\n"
        if sandbox_port
        else ""
    )
    accel_acl = "acl sandbox_accel myportname sandbox_accel\n" if sandbox_port else ""
    accel_rules = (
        "# The reverse-proxy port only ever goes to the sandbox.\n"
        "cache_peer_access sandbox allow sandbox_accel\n"
        "cache_peer_access sandbox deny all\n"
        "never_direct allow sandbox_accel\n"
        "http_access allow sandbox_accel localnet\n"
        "\n"
        if sandbox_port
        else ""
    )
    return (
        "# The SSRF proxy (Dify's docker/ssrf_proxy): outbound requests of user code (sandbox) and of HTTP\n"
        "# nodes and tools (api, worker) go through port 3128."
        + (" Port 8194 reverse-proxies to the sandbox." if sandbox_port else "")
        + "\n"
        "http_port 3128\n"
        f"{accel}"
        f"{SQUID_DNS}"
        "\n"
        "acl localnet src 10.0.0.0/8\n"
        "acl localnet src 100.64.0.0/10\n"
        "acl localnet src 172.16.0.0/12\n"
        "acl localnet src 192.168.0.0/16\n"
        "acl localnet src fc00::/7\n"
        "acl localnet src fe80::/10\n"
        f"{accel_acl}"
        "acl SSL_ports port 443\n"
        f"{_ports(s)}"
        "acl CONNECT method CONNECT\n"
        f"{_denied(s)}"
        "\n"
        f"{accel_rules}"
        "http_access deny !Safe_ports\n"
        "http_access deny CONNECT !SSL_ports\n"
        f"{deny_rule}"
        "http_access allow localhost\n"
        "http_access allow localnet\n"
        "http_access deny all\n"
        "\n"
        "coredump_dir /var/spool/squid\n"
        "pid_filename /var/spool/squid/squid.pid\n"
        "cache deny all\n"
        "# Large request bodies (file uploads to tools, code runs through the sandbox port) as Dify's\n"
        '# template allows them: "an error will occur when uploading more than two files" otherwise.\n'
        "client_request_buffer_max_size 100 MB\n"
        f"{SQUID_LOGGING}"
    )


def agent_squid_conf(s: Settings) -> str:
    """The agent's SSRF proxy (Dify 1.16.1 and later, docker/ssrf_proxy/squid-agent.conf.template):
    the only way out of the agent's local sandbox. It reaches the agent backend's stub API and the
    api's /files, and the internet, never the private and special ranges."""
    return (
        "# The agent's SSRF proxy (Dify's docker/ssrf_proxy/squid-agent.conf.template): the local sandbox's\n"
        "# only way out.\n"
        "http_port 3128\n"
        f"{SQUID_DNS}"
        "\n"
        "acl SSL_ports port 443\n"
        f"{_ports(s)}"
        "acl CONNECT method CONNECT\n"
        "acl to_agent_backend dstdomain -n dify-agent-backend\n"
        "acl agent_backend_port port 5050\n"
        "acl path_agent_stub urlpath_regex -i ^/agent-stub/\n"
        "acl to_dify_api dstdomain -n dify-api\n"
        "acl api_port port 5001\n"
        "acl path_files urlpath_regex -i ^/files/\n"
        f"{_denied(s)}"
        "\n"
        "# The agent stub and the api's files: the two places inside the cluster it may go.\n"
        "http_access allow to_agent_backend agent_backend_port path_agent_stub\n"
        "http_access allow to_dify_api api_port path_files\n"
        "http_access deny !Safe_ports\n"
        "http_access deny CONNECT !SSL_ports\n"
        + _deny(s)
        + "# Clients: only the local sandbox reaches this proxy (NetworkPolicy).\n"
        "http_access allow all\n"
        "\n"
        "coredump_dir /var/spool/squid\n"
        "pid_filename /var/spool/squid/squid.pid\n"
        "cache deny all\n"
        "client_request_buffer_max_size 100 MB\n"
        f"{SQUID_LOGGING}"
    )
