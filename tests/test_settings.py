"""The README's configuration table and the Settings class describe the same settings."""

from __future__ import annotations

import re

from app.embeddings.engine import Engine, Limits
from app.embeddings.models import ModelRegistry, bundled_minilm
from app.index.faiss import FaissIndex
from app.settings import DEFAULTS, PROJECT_ROOT, Settings


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


def test_the_layers_defaults_are_the_settings_defaults(monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"EMBEDSEARCH_{name.upper()}", raising=False)
    assert Settings(_env_file=None) == DEFAULTS  # no validator changes a declared default
    limits, engine = Limits(), Engine(ModelRegistry([bundled_minilm()]), lambda spec: None)
    assert (limits.max_inputs, limits.max_tokens) == (
        DEFAULTS.max_inputs_per_request,
        DEFAULTS.max_tokens_per_request,
    )
    assert (engine.batch_tokens, engine.max_queued) == (
        DEFAULTS.batch_tokens,
        DEFAULTS.max_queued_inputs,
    )
    index = FaissIndex(4)
    assert (index.exact_max, index.nprobe) == (DEFAULTS.index_exact_max, DEFAULTS.index_nprobe)
