"""A non-editable install (`pip install .`) ships every template and static file of the pages."""

from __future__ import annotations

import tomllib

from app.settings import PROJECT_ROOT, WEB, Settings


def test_package_data_covers_every_page_file() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {path for glob in config["package-data"]["app.web"] for path in WEB.glob(glob)}
    files = {p for folder in ("templates", "static") for p in (WEB / folder).rglob("*")}
    assert {p for p in files if p.is_file()} <= shipped


def test_page_files_default_to_the_packaged_ones() -> None:
    settings = Settings(_env_file=None)
    assert settings.templates_dir == WEB / "templates" and settings.static_dir == WEB / "static"
    assert (settings.templates_dir / "base.html").is_file()
    assert (settings.static_dir / "app.css").is_file()
