"""All settings, declared once: each has a default that runs locally and a description.

Set any of them with an environment variable ``EMBEDSEARCH_<NAME>`` (or a ``.env`` file).
The README's configuration table is checked against this class by a test.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WEB = (
    Path(__file__).resolve().parent / "web"
)  # the pages' templates and static files, shipped inside


class Settings(BaseSettings):
    """Runtime configuration of embedsearch."""

    model_config = SettingsConfigDict(env_prefix="EMBEDSEARCH_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(8000, description="Port the server listens on.")
    data_dir: Path = Field(Path("data"), description="Directory for the database and indexes.")
    templates_dir: Path = Field(WEB / "templates", description="Jinja2 templates.")
    static_dir: Path = Field(WEB / "static", description="Static assets served at /static.")
    model: str = Field("all-MiniLM-L6-v2", description="Default embedding model id.")
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Extra model names mapped to a served model, as JSON, e.g. "
        '`{"my-embedder": "all-MiniLM-L6-v2"}`; they win over the built-in OpenAI names.',
    )
    openai_aliases: bool = Field(
        True,
        description="Serve `text-embedding-3-small`, `text-embedding-3-large` and "
        "`text-embedding-ada-002` as aliases of the default model, so OpenAI clients work with "
        "their default model name; `EMBEDSEARCH_MODEL_ALIASES` overrides them one by one.",
    )
    token_ids: Literal["openai", "model"] = Field(
        "openai",
        description="Vocabulary of token-id input (`[int]` or `[[int]]`): `openai` decodes the "
        "ids with OpenAI's `cl100k_base` (what OpenAI clients such as LangChain send) and "
        "embeds the text; `model` reads them as the served model's own ids.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys; empty leaves the API open.",
    )
    truncate: bool = Field(
        True, description="Truncate inputs longer than the model window (false: answer 400)."
    )
    max_inputs_per_request: int = Field(2048, description="Most inputs in one embeddings call.")
    max_tokens_per_request: int = Field(
        300_000, description="Most tokens, summed over inputs, in one embeddings call."
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, description="Largest JSON request body, in bytes."
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024, description="Largest multipart upload (all files together), in bytes."
    )
    max_files_per_upload: int = Field(1000, description="Most files in one upload.")
    chunk_tokens: int = Field(
        200, description="Most tokens in a chunk (at most the model's window: 254 for MiniLM)."
    )
    chunk_overlap: int = Field(40, description="Tokens shared by consecutive chunks.")
    embeddings_url: str | None = Field(
        None,
        description="Base URL of a remote OpenAI-compatible embeddings API (e.g. "
        "`http://host:8000/v1`) for ingestion and search; unset uses this server's model.",
    )
    embeddings_key: str | None = Field(
        None, description="API key for `EMBEDSEARCH_EMBEDDINGS_URL`."
    )
    batch_tokens: int = Field(
        4096, description="Token budget of one model batch (padded length x batch size)."
    )
    max_queued_inputs: int = Field(
        16_384, description="Most inputs waiting for the model; more are refused with 429."
    )
    model_threads: int = Field(
        0, description="Threads the model runs on (torch or ONNX Runtime); 0: one per core."
    )
    background_nice: int = Field(
        12,
        ge=0,
        le=19,
        description="Nice steps by which the model's threads and ingestion run below the "
        "request threads (Linux): on busy cores a search does not wait its turn behind bulk work; "
        "0: same priority.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description="Model runtime: `torch`, `onnx` or `onnx-int8` (built once, then cached; a "
        "build whose vectors drift from torch's falls back to torch).",
    )
    int8_float_layers: int = Field(
        3,
        ge=0,
        le=6,
        description="Layers whose feed-forward output projection the `onnx-int8` build keeps in "
        "fp32: 3 holds semantic nDCG@10 within 0.003 of fp32 (0: fastest, up to 0.006 behind).",
    )
    models_dir: Path | None = Field(
        None,
        description="Where ONNX model builds are cached; unset: `models` in the data directory.",
    )
    # Measured by ``python -m bench.index_scale``: exact search stays below this size; above it an
    # IVF index answers with recall@10 >= 0.95 at a fraction of the latency.
    index_exact_max: int = Field(
        200_000,
        description="Vectors in a collection above which its index turns from exact search to "
        "approximate (IVF); back to exact below half of it.",
    )
    database_url: str | None = Field(
        None,
        description="Database: unset uses the SQLite file `embedsearch.db` in the data "
        "directory; `postgresql://user@host:5432/name` a PostgreSQL database that many replicas "
        "share.",
    )
    database_pool_size: int = Field(
        10,
        description="Most connections one replica opens to the database: to PostgreSQL, or "
        "SQLite's readers (which never wait for the writer).",
    )
    job_lease_seconds: float = Field(
        30.0,
        description="How long a replica's claim on an ingestion job lasts unless renewed (it "
        "renews every third of it); a job of a replica that died is taken over after this.",
    )
    job_poll_seconds: float = Field(
        1.0, description="How often a replica looks for ingestion jobs queued by other replicas."
    )
    job_max_attempts: int = Field(
        3, description="Claims of one ingestion job (replicas dying under it) before it fails."
    )
    index_follow_seconds: float = Field(
        0.0,
        description="Least time between a replica's checks that its index has every change in "
        "the database; 0: before every search, so a search sees every write committed before it.",
    )
    removals_keep_seconds: float = Field(
        86_400.0,
        description="How long removed chunk ids are kept for indexes to follow; an index older "
        "than that compares every id instead.",
    )
    index_nprobe: int = Field(
        32,
        description="Lists an approximate (IVF) index searches per query: more is slower, surer.",
    )

    max_query_words: int = Field(
        256, description="Most words in a search query; a longer one is refused with 400."
    )
    max_query_bytes: int = Field(
        8192, description="Largest search query, in bytes (UTF-8); a longer one is refused."
    )
    max_filter_keys: int = Field(32, description="Most metadata fields one search filter may test.")
    max_clusters: int = Field(100, description="Largest k a clustering may ask for.")
    ward_max_documents: int = Field(
        10_000,
        ge=0,
        description="Collections of up to this many documents are clustered by Ward linkage "
        "seeding k-means (BANKING77 V-measure 0.81 against 0.79); its neighbour graph costs "
        "O(n^2) time, so larger ones use k-means++ alone.",
    )
    map_background_documents: int = Field(
        2000,
        ge=0,
        description="Documents in a collection above which its t-SNE map is computed in the "
        "background (`GET /api/map` answers PCA's map, `state: pending`, meanwhile).",
    )

    index_backend: Literal["faiss", "qdrant"] = Field(
        "faiss",
        description="Where vectors and (with `qdrant`) the keyword index live: `faiss` files in "
        "the data directory, or a Qdrant server, cluster or embedded store (see `QDRANT_*`).",
    )
    qdrant_url: str | None = Field(
        None, description="URL of a Qdrant server or cluster, e.g. `http://qdrant:6333`."
    )
    qdrant_api_key: str | None = Field(None, description="API key for `EMBEDSEARCH_QDRANT_URL`.")
    qdrant_path: Path | None = Field(
        None,
        description="Directory of an embedded Qdrant (the client's local mode: one process, "
        "no stemming, for one machine and tests); used when `QDRANT_URL` is unset.",
    )
    qdrant_edge: bool = Field(
        False,
        description="With `QDRANT_PATH`: embed the real Qdrant engine (qdrant-edge-py: English "
        "stemming, HNSW, far faster) instead of the client's local mode.",
    )
    qdrant_prefix: str = Field(
        "embedsearch_", description="Prefix of this installation's Qdrant collection names."
    )
    qdrant_shards: int = Field(
        1, ge=1, description="Shards of each new Qdrant collection (spread over the cluster)."
    )
    qdrant_replicas: int = Field(
        1, ge=1, description="Replication factor of each new Qdrant collection."
    )
    qdrant_timeout: int = Field(
        10, ge=1, description="Seconds to wait for Qdrant before a search answers 503."
    )
    max_metadata_depth: int = Field(
        16, description="Deepest nesting of objects and arrays in a document's metadata."
    )
    max_metadata_bytes: int = Field(
        65_536, description="Largest metadata of one document, in bytes of JSON."
    )
    max_title_chars: int = Field(1000, description="Longest title a document may be given.")
    max_hit_chars: int = Field(
        4000,
        description="Most characters of chunk text in one search hit; longer texts are cut and "
        "flagged `text_truncated`.",
    )
    max_response_bytes: int = Field(
        8 * 1024 * 1024,
        description="Largest list of hits in one response, in bytes of JSON; past it the list "
        "is cut (page on with `offset`).",
    )

    extract_cpu_seconds: int = Field(
        60, description="CPU seconds the child process reading one PDF or DOCX file may use."
    )
    extract_memory_mb: int = Field(
        512, description="Memory (address space, MB) of the child process reading one PDF or DOCX."
    )
    extract_timeout: float = Field(
        120, description="Seconds of wall time reading one PDF or DOCX file may take."
    )
    access_log: bool = Field(
        False,
        description="Log a line per HTTP request (uvicorn's access log); off, it saves the "
        "embeddings route ~0.1 ms of CPU per request.",
    )
    shutdown_timeout: int = Field(
        10,
        description="Seconds `serve` waits for requests in flight when stopping before cancelling "
        "them (a file being read is killed).",
    )

    max_import_bytes: int = Field(
        8 * 1024**3,
        description="Largest database `embedsearch import` unpacks from an archive, in bytes.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


# The declared defaults, environment left out: the one place the layers below take a default from.
DEFAULTS = Settings.model_construct()


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment, read once."""
    return Settings()
