"""Where the public evaluation data sets are: ``EMBEDSEARCH_BENCH_DATA``, else ``../shared/data``
beside the checkout. None of them is part of the repository; see ``SOURCES``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "EMBEDSEARCH_BENCH_DATA"
SOURCES = {
    "scifact": "SciFact in BEIR format (corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv), "
    "CC BY 4.0: https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip",
    "banking77": "BANKING77's test split as test.jsonl of {text, label, label_name}, CC BY 4.0: "
    "https://github.com/PolyAI-LDN/task-specific-datasets (banking_data/test.csv)",
    "ag_news": "AG News' test split as test.jsonl of {title, description, text, label, "
    "label_name}: ag_news_csv/test.csv from https://github.com/mhjabreel/CharCnn_Keras",
}


def data_dir() -> Path:
    """The folder holding one sub-folder per data set."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get(DATA_ENV) or default)


def dataset(name: str) -> Path:
    """The folder of data set ``name``; FileNotFoundError saying where to get it if missing."""
    path = data_dir() / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"No {name} data at {path}. Get {SOURCES[name]}, put it in {path}, or point "
            f"--data DIR (or {DATA_ENV}) at a folder holding {name}/."
        )
    return path
