"""ONNX Runtime backends for the bundled model: fp32 (``onnx``) and dynamic int8 (``onnx-int8``).

The ONNX files are built once from the bundled weights (never written beside them: they live under
``<models_dir>/<model>/<backend>/``, by default ``data/models``) with a JSON record of what they
were built from; a change of weights, library versions or quantization config rebuilds them.
Building is:

1. export the model's transformer (eager attention, so ONNX Runtime can fuse it) with
   ``torch.onnx.export``;
2. fuse it with ONNX Runtime's own BERT optimizer (EmbedLayerNormalization, Attention, BiasGelu,
   SkipLayerNormalization);
3. for ``onnx-int8``, quantize it with ONNX Runtime's ``quantize_dynamic``, with the settings of
   Optimum's ``AutoQuantizationConfig`` preset that fits this CPU;
4. the quality guard: the mean cosine of its vectors to torch's on ``GUARD_TEXTS`` must reach
   ``GUARD_MIN_COSINE``, or the server falls back to torch (and says so in the log and /health).

sentence-transformers' own ``backend="onnx"`` and ``export_dynamic_quantized_onnx_model`` need
``optimum-onnx``, whose only release (0.1.0) requires transformers < 4.58 while
sentence-transformers 6 requires transformers 5, so the two cannot be installed together; the steps
above are what those helpers run underneath. Pooling and normalisation stay the library's own
modules: ONNX Runtime yields token embeddings, then the model's ``Pooling`` and ``Normalize`` run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from app.embeddings.models import ModelSpec

log = logging.getLogger("embedsearch.onnx")

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_BACKENDS = ("onnx", "onnx-int8")
GUARD_MIN_COSINE = 0.99
RECORD_FORMAT = 1
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Varied texts the quality guard embeds with both backends: claims, questions, code, lists,
# numbers, other languages, very short and long-ish ones.
GUARD_TEXTS = [
    "The cat sat on the mat.",
    "How do I reset my password?",
    "Aspirin lowers the risk of a second heart attack in people with coronary disease.",
    "Vitamin D supplements do not prevent fractures in healthy older adults.",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "The quarterly revenue grew by 12% to $4.2 billion, beating analysts' estimates.",
    "Paris is the capital and most populous city of France.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Error: connection refused (ECONNREFUSED) while connecting to 127.0.0.1:5432",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El aprendizaje automático es una rama de la inteligencia artificial.",
    "東京は日本の首都です。",
    "ok",
    "Why is the sky blue?",
    "Mitochondria are the powerhouse of the cell.",
    "Add 2 cups of flour, 1 tsp of baking soda and a pinch of salt; mix well.",
    "The defendant was found not guilty on all counts after a three-week trial.",
    "In 1969, Apollo 11 landed the first humans on the Moon.",
    "Install the package with pip and restart the server.",
    "BRCA1 mutations increase the lifetime risk of breast and ovarian cancer.",
    "The train to Amsterdam leaves from platform 4 at 09:15.",
    "Our refund policy allows returns within 30 days of purchase.",
    "Gradient descent updates parameters in the direction of the negative gradient.",
    "She played the violin at the wedding, and everyone cried.",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    "Climate change is increasing the frequency of extreme heat events.",
    "The API returns 429 Too Many Requests when the rate limit is exceeded.",
    "Smoking is the leading preventable cause of lung cancer.",
    "What time does the pharmacy close on Sundays?",
    "A balanced diet includes fruits, vegetables, whole grains and lean protein.",
    "The GDP of the eurozone contracted by 0.1% in the fourth quarter.",
    "Neutrinos have a very small but non-zero mass.",
    "Please find attached the signed contract and the invoice for March.",
    "The patient presented with fever, cough and shortness of breath for five days.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Use a mutex to protect shared state accessed by several threads.",
    "The novel follows a young orphan who discovers she is a witch.",
    "Exercise improves insulin sensitivity in people with type 2 diabetes.",
    "Meeting moved to Thursday 3pm, room 2.14.",
    "The bridge was closed for repairs after cracks were found in its pillars.",
    "Antibiotics are ineffective against viral infections such as the common cold.",
    "git rebase -i HEAD~3 lets you squash the last three commits.",
    "The museum's collection includes over 10,000 works of modern art.",
    "Sleep deprivation impairs memory consolidation.",
    "Turn left at the second traffic light, then continue for 200 metres.",
    "The central bank raised interest rates by a quarter of a percentage point.",
    "Elephants can recognise themselves in a mirror.",
    "The firmware update fixes a bug that drained the battery overnight.",
    "Hypertension is a major risk factor for stroke.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "Which vaccines are recommended for travel to Kenya?",
    "The team won the championship for the third consecutive year.",
    "CRISPR-Cas9 enables precise editing of genomic DNA.",
    "Rainfall in the region has declined by 20% over the past three decades.",
    "Kubernetes schedules pods onto nodes based on resource requests.",
    "The recipe calls for ripe tomatoes, garlic, olive oil and fresh basil.",
    "Children who read for pleasure perform better in mathematics.",
    "The spacecraft entered orbit around Jupiter after a five-year journey.",
    "Statins reduce LDL cholesterol but may cause muscle pain in some patients.",
    "I would like to cancel my subscription, effective immediately.",
    "The painting was sold at auction for a record sum.",
    (
        "Long-term exposure to fine particulate matter air pollution is associated with "
        "increased mortality from cardiovascular and respiratory disease, and the association "
        "holds at concentrations below current regulatory limits in several large cohorts."
    ),
    (
        "The committee reviewed the proposal in detail, noting that while the budget was "
        "realistic, the timeline for the second phase depended on permits that had not yet "
        "been granted, and recommended a revised schedule with explicit milestones."
    ),
]


@dataclass(frozen=True)
class Quantization:
    """The dynamic int8 settings of one Optimum ``AutoQuantizationConfig`` preset."""

    preset: str  # avx512_vnni, avx512, avx2 or arm64
    per_channel: bool = True
    reduce_range: bool = False
    weights: str = "QInt8"  # activations are QUInt8, as dynamic quantization requires
    weights_symmetric: bool = True
    activations_symmetric: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def quantization_for_cpu(flags: set[str] | None = None) -> Quantization:
    """The preset that fits this CPU: VNNI does u8*s8 without saturation, so full range there;
    without VNNI (avx512/avx2's VPMADDUBSW can saturate) use 7-bit weights, as ONNX Runtime advises."""
    flags = cpu_flags() if flags is None else flags
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return Quantization("avx512_vnni")
    if "avx512f" in flags:
        return Quantization("avx512", reduce_range=True)
    if "avx2" in flags:
        return Quantization("avx2", reduce_range=True)
    if platform.machine().lower() in ("aarch64", "arm64"):
        return Quantization("arm64")
    return Quantization("avx2", reduce_range=True)


def compatible_backends(a: str, b: str) -> bool:
    """Whether vectors made by backends ``a`` and ``b`` may share a collection.

    torch, onnx and onnx-int8 are compatible: an ONNX backend only serves if its guard passed
    (mean cosine to torch at least GUARD_MIN_COSINE), otherwise the server runs torch. Anything
    else (a remote service) is compatible only with itself.
    """
    return a == b or (a in BACKENDS and b in BACKENDS)


def _versions() -> dict[str, str]:
    names = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def _source_files(source: Path) -> dict[str, dict[str, int]]:
    """Size and mtime of every file the model is built from (README and the like left out)."""
    files = {}
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
            stat = path.stat()
            files[path.relative_to(source).as_posix()] = {
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
    return files


def _weights_hash(source: Path, files: dict[str, dict[str, int]]) -> str:
    """sha256 of the weight files (taken only when building: size and mtime detect changes)."""
    digest = hashlib.sha256()
    for name in files:
        if name.endswith((".safetensors", ".bin")):
            with open(source / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def wanted_record(spec: ModelSpec, backend: str, quantization: Quantization | None) -> dict:
    """What a cached build must have been built from to be reused (the guard result aside)."""
    source = Path(spec.path).resolve()
    return {
        "format": RECORD_FORMAT,
        "model": spec.id,
        "backend": backend,
        "source": str(source),
        "files": _source_files(source),
        "versions": _versions(),
        "export": {"opset": OPSET, "attention": "eager", "optimizer": "onnxruntime bert fusion"},
        "quantization": quantization.as_dict() if quantization else None,
    }


def _matches(record: dict, wanted: dict) -> bool:
    return all(record.get(key) == value for key, value in wanted.items())


@dataclass
class Build:
    """A usable (or rejected) ONNX build: its file, record and the guard's verdict."""

    path: Path
    record: dict

    @property
    def guard(self) -> dict:
        return self.record["guard"]

    @property
    def passed(self) -> bool:
        return bool(self.guard["passed"])


class ModelCache:
    """ONNX builds of served models under ``<root>/<model>/<backend>/`` with a ``build.json``."""

    def __init__(self, root: Path, threads: int = 0) -> None:
        self.root = Path(root)
        self.threads = threads

    def directory(self, spec: ModelSpec, backend: str) -> Path:
        return self.root / spec.id / backend

    def get(self, spec: ModelSpec, backend: str, quantization: Quantization | None = None) -> Build:
        """The build for this model and backend, built (and guarded) unless a valid one exists."""
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"Not an ONNX backend: {backend!r}")
        quantization = (quantization or quantization_for_cpu()) if backend == "onnx-int8" else None
        wanted = wanted_record(spec, backend, quantization)
        directory = self.directory(spec, backend)
        record = self._read_record(directory)
        if record is not None and _matches(record, wanted) and (directory / "model.onnx").is_file():
            return Build(directory / "model.onnx", record)
        if record is not None:
            log.info("The %s build of %s is stale; rebuilding it.", backend, spec.id)
        return self._build(spec, backend, quantization, wanted, directory)

    @staticmethod
    def _read_record(directory: Path) -> dict | None:
        try:
            record = json.loads((directory / "build.json").read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and "guard" in record else None

    def _build(
        self,
        spec: ModelSpec,
        backend: str,
        quantization: Quantization | None,
        wanted: dict,
        directory: Path,
    ) -> Build:
        log.info("Building the %s model of %s under %s", backend, spec.id, directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{backend}."))
        try:
            export_fused(spec, work / "model.onnx")
            if quantization is not None:
                quantize(work / "model.onnx", work / "model.int8.onnx", quantization)
                os.replace(work / "model.int8.onnx", work / "model.onnx")
            record = {
                **wanted,
                "weights_sha256": _weights_hash(Path(wanted["source"]), wanted["files"]),
                "guard": guard(spec, work / "model.onnx", self.threads),
            }
            (work / "build.json").write_text(json.dumps(record, indent=2))
            # Swap the finished build in whole: readers see the old directory or the new one.
            if directory.exists():
                old = directory.with_name(f".{backend}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(work, directory)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return Build(directory / "model.onnx", record)


def export_fused(spec: ModelSpec, target: Path) -> None:
    """Export the model's transformer to ONNX (token embeddings out) and fuse it for ORT."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Eager attention exports the plain matmul/softmax pattern ORT fuses into its Attention op.
    model = SentenceTransformer(
        spec.path, device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    transformer = model[0].auto_model.eval()
    config = transformer.config

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            out = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    raw = target.with_suffix(".raw.onnx")
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "token_embeddings")}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            TokenEmbeddings().eval(),
            (sample, sample, torch.zeros_like(sample)),
            str(raw),
            input_names=list(INPUTS),
            output_names=["token_embeddings"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
    stats = fused.get_fused_operator_statistics()
    log.info("Fused operators: %s", {k: v for k, v in stats.items() if v})
    fused.save_model_to_file(str(target))
    raw.unlink(missing_ok=True)


def quantize(source: Path, target: Path, quantization: Quantization) -> None:
    """Dynamic int8 quantization with ORT (what Optimum's ORTQuantizer runs for these presets)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT's "consider pre-processing" notice goes to the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=quantization.per_channel,
            reduce_range=quantization.reduce_range,
            weight_type=getattr(QuantType, quantization.weights),
            extra_options={
                "WeightSymmetric": quantization.weights_symmetric,
                "ActivationSymmetric": quantization.activations_symmetric,
                # Fused contrib ops (Attention, BiasGelu) defeat shape inference; they are float.
                "DefaultTensorType": onnx.TensorProto.FLOAT,
            },
        )
    finally:
        root.setLevel(level)


def guard(spec: ModelSpec, path: Path, threads: int = 0) -> dict:
    """Mean and min cosine of the ONNX model's vectors to torch fp32 on GUARD_TEXTS."""
    from app.embeddings.encoder import SentenceTransformerEncoder, encode_batches

    reference = SentenceTransformerEncoder(spec, threads=threads)
    candidate = OnnxEncoder(spec, path, threads=threads, base=reference.model)
    ids = reference.tokenize(GUARD_TEXTS)
    ids = [seq[: reference.max_tokens] for seq in ids]
    batches = [ids[i : i + 16] for i in range(0, len(ids), 16)]
    expected = np.concatenate(encode_batches(reference, batches))
    got = np.concatenate(encode_batches(candidate, batches))
    cosines = np.sum(expected * got, axis=1)
    mean = float(cosines.mean())
    return {
        "texts": len(GUARD_TEXTS),
        "mean_cosine": round(mean, 6),
        "min_cosine": round(float(cosines.min()), 6),
        "threshold": GUARD_MIN_COSINE,
        "passed": mean >= GUARD_MIN_COSINE,
    }


class OnnxEncoder:
    """The model's transformer on ONNX Runtime, fed token ids directly; the library's own
    Pooling and Normalize modules turn its token embeddings into sentence vectors."""

    def __init__(
        self,
        spec: ModelSpec,
        path: Path,
        threads: int = 0,
        backend: str = "onnx",
        base: Any = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import onnxruntime as ort
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        self._torch = torch
        self.backend = backend
        self.requested_backend = backend
        self.fallback: str | None = None
        self.path = Path(path)
        # The torch model is loaded for its tokenizer and its pooling/normalisation modules.
        self.model = base if base is not None else SentenceTransformer(spec.path, device="cpu")
        self.model.eval()
        self._heads = list(self.model)[1:]
        self.tokenizer = self.model.tokenizer
        self.dimensions = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length) - 2
        self.vocab_size = int(self.tokenizer.vocab_size)
        # Dynamic int8 scales activations per tensor, so in a padded batch a text's vector would
        # depend on its batch mates (mean cosine 0.992 alone vs in a batch). Run alone, each
        # sequence gets its own scales: the same vector in any batch. A call runs on one ORT
        # thread, and callers run one call per core at once (``concurrency``): measured faster
        # than one session on two threads.
        self._alone = backend == "onnx-int8"
        self.concurrency = 1
        if self._alone:
            self.concurrency = threads or os.cpu_count() or 1
            threads = 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle threads sleep rather than spin (see OMP_WAIT_POLICY in app/__init__.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens and untruncated."""
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """Run one padded batch: ORT for token embeddings, then the model's own heads."""
        torch = self._torch
        width = max(len(ids) for ids in batch) + 2
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        input_ids = np.full((len(batch), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids) + 2] = [cls, *ids, sep]
            mask[row, : len(ids) + 2] = 1
        if not self._alone:
            tokens = self._run(input_ids, mask)
        else:  # each row without its padding
            ends = [len(ids) + 2 for ids in batch]
            runs = [
                self._run(input_ids[row : row + 1, :end], mask[row : row + 1, :end])
                for row, end in enumerate(ends)
            ]
            tokens = np.zeros((len(batch), width, runs[0].shape[-1]), np.float32)
            for row, (end, out) in enumerate(zip(ends, runs, strict=True)):
                tokens[row, :end] = out[0]
        features = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
            "token_embeddings": torch.from_numpy(tokens),
        }
        with torch.inference_mode():
            for module in self._heads:
                features = module(features)
        return features["sentence_embedding"].float().numpy().astype(np.float32, copy=False)

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token embeddings of a padded batch from ONNX Runtime."""
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (tokens,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})
        return tokens


def load_encoder(
    spec: ModelSpec,
    backend: str = "torch",
    models_dir: Path | None = None,
    threads: int = 0,
    cache: ModelCache | None = None,
) -> Any:
    """The encoder for ``backend``; torch (with the reason recorded) if the ONNX one cannot serve.

    The returned encoder has ``backend`` (what runs), ``requested_backend`` and ``fallback``
    (None, or why the requested backend is not the one running).
    """
    from app.embeddings.encoder import SentenceTransformerEncoder

    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    reason = None
    if backend != "torch":
        cache = cache or ModelCache(models_dir or Path("data/models"), threads=threads)
        try:
            build = cache.get(spec, backend)
            if build.passed:
                log.info(
                    "Model %s on %s (guard mean cosine %.4f)",
                    spec.id,
                    backend,
                    build.guard["mean_cosine"],
                )
                return OnnxEncoder(spec, build.path, threads=threads, backend=backend)
            reason = (
                f"quality guard failed: mean cosine {build.guard['mean_cosine']:.4f} to torch "
                f"< {GUARD_MIN_COSINE}"
            )
        except Exception as exc:  # a broken export must not keep the server from serving
            log.exception("Building the %s model failed", backend)
            reason = f"{backend} build failed: {exc}"
        log.warning(
            "Backend %s not used for %s: %s; falling back to torch.", backend, spec.id, reason
        )
    encoder = SentenceTransformerEncoder(spec, threads=threads)
    encoder.requested_backend = backend
    encoder.fallback = reason
    return encoder
