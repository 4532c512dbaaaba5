"""The encoder base: tokenising with the Rust tokenizer directly gives transformers' own ids."""

from __future__ import annotations

from app.embeddings.encoder import SentenceEncoder
from app.embeddings.models import bundled_minilm
from tests.support.fakes import tokenizer


class TokenizerOnly:
    """Just enough of a SentenceTransformer for the encoder base: its tokenizer and window."""

    max_seq_length = 256

    def __init__(self) -> None:
        self.tokenizer = tokenizer()

    def eval(self) -> None:
        pass

    def get_embedding_dimension(self) -> int:
        return 384


def test_tokenize_matches_transformers_untruncated_without_special_tokens() -> None:
    encoder = SentenceEncoder(bundled_minilm(), "torch", base=TokenizerOnly())  # type: ignore[arg-type]
    texts = [
        "Vitamin D deficiency is associated with colorectal cancer.",
        "naïve café — 東京 🙂 x",
        " ".join(["word"] * 600),  # far past the window: counted whole, the engine truncates
        "\u200b",
    ]
    expected = tokenizer()(texts, add_special_tokens=False, verbose=False)["input_ids"]
    assert encoder.tokenize(texts) == expected
    assert len(encoder.tokenize(texts)[2]) == 600
