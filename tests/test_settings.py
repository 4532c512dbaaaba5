"""The README's configuration table and the Settings class describe the same settings."""

from __future__ import annotations

import re

from app.settings import PROJECT_ROOT, Settings


def documented() -> dict[str, tuple[str, str]]:
    text = (PROJECT_ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `EMBEDSEARCH_(\w+)` \| `(.*?)` \| (.*) \|$", text, re.M)
    return {name.lower(): (default, description) for name, default, description in rows}


def declared() -> dict[str, tuple[str, str]]:
    table = {}
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if hasattr(default, "is_relative_to") and default.is_relative_to(PROJECT_ROOT):
            default = default.relative_to(PROJECT_ROOT)
        table[name] = (str(default), field.description)
    return table


def test_readme_table_matches_settings() -> None:
    assert documented() == declared()


def test_every_setting_has_a_description() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_api_keys_split_on_commas(monkeypatch) -> None:
    monkeypatch.setenv("EMBEDSEARCH_API_KEYS", " a, b ,,c")
    assert Settings(_env_file=None).api_keys == ["a", "b", "c"]
