"""A replica set on this machine: N embedsearch servers on one PostgreSQL database, behind nginx
(used by the multi-replica test and bench/replicas.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import free_port, running_server

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(p).exists()), None
)

NGINX_CONF = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 200m;
    upstream embedsearch {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://embedsearch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 600s;
            # A replica that is down is skipped (its requests go to the next one).
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


@dataclass
class Replica:
    """One running replica: its URL, process and log."""

    url: str
    proc: subprocess.Popen
    log: Path
    root: Path


@contextmanager
def load_balancer(root: Path, upstreams: list[str]) -> Iterator[str]:
    """nginx on a free port of 127.0.0.1 spreading requests over ``upstreams`` (host:port)."""
    if NGINX is None:
        raise RuntimeError("nginx is not installed")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            root=root,
            port=port,
            # nginx started by root runs its workers as nobody, who cannot use these directories.
            user="user root;" if os.geteuid() == 0 else "",
            servers="\n".join(
                f"        server {u} max_fails=1 fail_timeout=5s;" for u in upstreams
            ),
        )
    )
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(root), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/health/live", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    error = (root / "error.log").read_text()
                    raise RuntimeError(f"nginx did not start: {error}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def replica_env(database_url: str, **overrides: str) -> dict[str, str]:
    """A replica's environment: the shared database, one model thread (they share the cores),
    and short leases so a dead replica's job is taken over soon."""
    return {
        "EMBEDSEARCH_DATABASE_URL": database_url,
        "EMBEDSEARCH_MODEL_THREADS": "1",
        "EMBEDSEARCH_JOB_LEASE_SECONDS": "3",
        "EMBEDSEARCH_JOB_POLL_SECONDS": "0.2",
        **overrides,
    }


@contextmanager
def replica_set(root: Path, env: dict[str, str], count: int) -> Iterator[tuple[str, list[Replica]]]:
    """``count`` replicas (each with its own data directory under ``root``) behind nginx; yields
    the load balancer's URL and the replicas."""
    with ExitStack() as stack:
        replicas = []
        for n in range(count):
            workdir = root / f"replica-{n}"
            workdir.mkdir(parents=True, exist_ok=True)
            url, proc, log = stack.enter_context(running_server(workdir, env, timeout=600))
            replicas.append(Replica(url, proc, log, workdir))
        upstreams = [r.url.removeprefix("http://") for r in replicas]
        balancer = stack.enter_context(load_balancer(root / "nginx", upstreams))
        yield balancer, replicas
