# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The configuration files of nginx and the SSRF proxy (squid), as text."""

from __future__ import annotations

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# Routes of Dify's docker/nginx/conf.d/default.conf.template: path -> (component, port).
API_ROUTES = ("/console/api", "/api", "/v1", "/files", "/mcp", "/triggers")


def nginx_conf(s: Settings) -> str:
    """nginx in front of Dify, with the routes of Dify's docker compose (docker/nginx).
    nginx-unprivileged: runs as uid 101, listens on 8080, writes only to /tmp."""
    api_locations = "".join(
        f"        location {path} {{\n            proxy_pass http://dify-api:5001;\n        }}\n" for path in API_ROUTES
    )
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
        "    proxy_set_header Host $host;\n"
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    proxy_set_header X-Forwarded-Proto $scheme;\n"
        "    proxy_set_header X-Forwarded-Port $server_port;\n"
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
        f"{api_locations}"
        "        location /e/ {\n"
        "            proxy_pass http://dify-plugin-daemon:5002;\n"
        "            proxy_set_header Dify-Hook-Url $scheme://$host$request_uri;\n"
        "        }\n"
        "        location /explore {\n"
        "            proxy_pass http://dify-web:3000;\n"
        "        }\n"
        "        location / {\n"
        "            proxy_pass http://dify-web:3000;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )


def squid_conf(s: Settings) -> str:
    """The SSRF proxy (Dify's docker/ssrf_proxy): outbound requests of user code (sandbox) and of
    HTTP nodes and tools (api, worker) go through port 3128; port 8194 reverse-proxies to the
    sandbox."""
    denied = "".join(f"acl denied_destinations dst {cidr}\n" for cidr in s.ssrf_proxy_denied_cidrs)
    deny_rule = (
        "# Never towards cloud metadata and the other denied ranges (dify_ssrf_proxy_denied_cidrs).\n"
        "http_access deny denied_destinations\n"
        if s.ssrf_proxy_denied_cidrs
        else ""
    )
    return (
        "# The SSRF proxy (Dify's docker/ssrf_proxy): outbound requests of user code (sandbox) and of HTTP\n"
        "# nodes and tools (api, worker) go through port 3128. Port 8194 reverse-proxies to the sandbox.\n"
        "http_port 3128\n"
        "http_port 8194 accel vhost name=sandbox_accel\n"
        "cache_peer dify-sandbox parent 8194 0 no-query originserver name=sandbox\n"
        "\n"
        "acl localnet src 10.0.0.0/8\n"
        "acl localnet src 100.64.0.0/10\n"
        "acl localnet src 172.16.0.0/12\n"
        "acl localnet src 192.168.0.0/16\n"
        "acl localnet src fc00::/7\n"
        "acl localnet src fe80::/10\n"
        "acl sandbox_accel myportname sandbox_accel\n"
        "acl SSL_ports port 443\n"
        "acl Safe_ports port 80 21 443 70 210 1025-65535 280 488 591 777\n"
        "acl CONNECT method CONNECT\n"
        f"{denied}"
        "\n"
        "# The reverse-proxy port only ever goes to the sandbox.\n"
        "cache_peer_access sandbox allow sandbox_accel\n"
        "cache_peer_access sandbox deny all\n"
        "never_direct allow sandbox_accel\n"
        "http_access allow sandbox_accel localnet\n"
        "\n"
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
        "access_log stdio:/dev/stdout\n"
        "cache_log stdio:/dev/stderr\n"
        "cache_store_log none\n"
    )
