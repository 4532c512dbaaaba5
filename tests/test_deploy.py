"""The deployment examples in deploy/ name only settings, extras and commands that exist.

No Docker engine runs here, so the files are read, not run: what they wire together is tested
without containers (tests/test_replicas.py, tests/index/).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from app.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SETTINGS = {f"EMBEDSEARCH_{name.upper()}" for name in Settings.model_fields}


def compose(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def environment(service: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in (service.get("environment") or {}).items()}


def test_every_embedsearch_variable_is_a_setting() -> None:
    named = set()
    for path in DEPLOY.iterdir():
        named |= set(re.findall(r"\bEMBEDSEARCH_[A-Z0-9_]+(?=[:=\s\"])", path.read_text()))
    assert named and named <= SETTINGS, named - SETTINGS


def test_the_image_installs_extras_that_exist() -> None:
    extras = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    wanted = re.search(r"'\.\[([a-z,]+)\]'", (DEPLOY / "Dockerfile").read_text()).group(1)
    assert {"postgres", "qdrant"} <= set(wanted.split(",")) <= set(extras)


def test_the_scale_out_set_up_has_every_part() -> None:
    services = compose("compose.yaml")["services"]
    qdrant = [name for name in services if name.startswith("qdrant-")]
    assert len(qdrant) == 3 and "postgres" in services and "nginx" in services
    app = environment(services["embedsearch"])
    assert app["EMBEDSEARCH_DATABASE_URL"].startswith("postgresql://")
    assert app["EMBEDSEARCH_INDEX_BACKEND"] == "qdrant"
    assert app["EMBEDSEARCH_QDRANT_REPLICAS"] == "2"
    assert services["embedsearch"]["deploy"]["replicas"] >= 2
    assert "--embeddings-only" in services["embeddings"]["command"]
    # nginx serves the pool at the path the replicas call it by.
    pool = re.search(r"location (/[\w-]+/)", (DEPLOY / "nginx.conf").read_text()).group(1)
    assert app["EMBEDSEARCH_EMBEDDINGS_URL"].startswith(f"http://nginx:8080{pool}")


def test_the_qdrant_cluster_example() -> None:
    services = compose("qdrant-compose.yaml")["services"]
    assert len([name for name in services if name.startswith("qdrant-")]) == 3
    app = environment(services["embedsearch"])
    assert app["EMBEDSEARCH_INDEX_BACKEND"] == "qdrant"
    assert app["EMBEDSEARCH_QDRANT_REPLICAS"] == "2"
    assert services["embedsearch"]["build"]["dockerfile"] == "deploy/Dockerfile"
