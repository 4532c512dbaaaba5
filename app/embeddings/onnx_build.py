"""Building the ONNX backends' models: fp32 (``onnx``) and dynamic int8 (``onnx-int8``).

The ONNX files are built once from the bundled weights (never written beside them: they live under
``<models_dir>/<model>/<backend>/``, by default ``data/models``) with a JSON record of what they
were built from; a change of weights, library versions or quantization config rebuilds them.
Building is:

1. export the model's transformer (eager attention, so ONNX Runtime can fuse it) with
   ``torch.onnx.export``;
2. fuse it with ONNX Runtime's own BERT optimizer (EmbedLayerNormalization, Attention, BiasGelu),
   leaving each residual Add and LayerNormalization apart (``SKIP_LAYER_NORM``);
3. for ``onnx-int8``, quantize it with ONNX Runtime's ``quantize_dynamic``, with the settings of
   Optimum's ``AutoQuantizationConfig`` preset that fits this CPU, leaving the layers most
   sensitive to it in fp32 (``float_nodes``);
4. the quality guard: the mean cosine of its vectors to torch's on ``GUARD_TEXTS`` must reach
   ``GUARD_MIN_COSINE`` and its worst text ``GUARD_WORST_COSINE``, or the server falls back to
   torch (and says so in the log and /health).

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
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, cast

from app.embeddings.guard import GuardResult, guard
from app.embeddings.models import ModelSpec
from app.embeddings.onnx import INPUTS

if TYPE_CHECKING:
    import onnx
    from transformers import PreTrainedModel

log = logging.getLogger("embedsearch.onnx")

ONNX_BACKENDS = ("onnx", "onnx-int8")
RECORD_FORMAT = 1
OPSET = 17
# ONNX Runtime's CPU SkipLayerNormalization took 4.3 ms of a 199-token row's 19 ms in the int8
# model (one thread, its profiler), where the Add and LayerNormalization it replaces take 0.8:
# left unfused (here, and by ORT at load: ``onnx.SESSION_DISABLED``), a row runs ~20% faster at
# 25, 100 and 199 tokens, with the same vectors to the guard (mean cosine 0.99589 both ways).
SKIP_LAYER_NORM = False
# The feed-forward output projections take GELU's outputs, whose outliers a per-tensor uint8
# activation scale flattens, and the first layers' errors grow through the rest. Keeping the
# first three in fp32 (and the embedding lookup, which quantising does not speed up) raised the
# guard's mean cosine to torch from 0.9926 to 0.9959 (worst text 0.961 -> 0.977) and brought
# semantic nDCG@10 within 0.003 of fp32 on three sets (README, "int8 quality"); two layers
# left BANKING77 0.004 behind.
FLOAT_FFN_LAYERS = 3
FFN_OUTPUT = re.compile(r"layer\.(\d+)/output/dense/MatMul$")


@dataclass(frozen=True)
class Quantization:
    """The dynamic int8 settings of one Optimum ``AutoQuantizationConfig`` preset."""

    preset: str  # avx512_vnni, avx512, avx2 or arm64
    per_channel: bool = True
    reduce_range: bool = False
    weights: str = "QInt8"  # activations are QUInt8, as dynamic quantization requires
    weights_symmetric: bool = True
    activations_symmetric: bool = False
    # Left in fp32 (see ``float_nodes``): the embedding layer, and the feed-forward output
    # projection of the first ``float_ffn_layers`` layers.
    float_embeddings: bool = True
    float_ffn_layers: int = FLOAT_FFN_LAYERS

    def as_dict(self) -> dict[str, str | bool]:
        """The settings as the build record keeps them."""
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
        "export": {
            "opset": OPSET,
            "attention": "eager",
            "optimizer": "onnxruntime bert fusion",
            "skip_layer_norm": SKIP_LAYER_NORM,
        },
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
    def guard(self) -> GuardResult:
        """The quality guard's verdict on this build."""
        return cast(GuardResult, self.record["guard"])  # written by guard() into the record

    @property
    def passed(self) -> bool:
        """Whether the build is close enough to torch to serve."""
        return self.guard["passed"]


class ModelCache:
    """ONNX builds of served models under ``<root>/<model>/<backend>/`` with a ``build.json``."""

    def __init__(self, root: Path, threads: int = 0, float_layers: int = FLOAT_FFN_LAYERS) -> None:
        self.root = Path(root)
        self.threads = threads
        self.float_layers = float_layers  # of an int8 build (Quantization.float_ffn_layers)

    def directory(self, spec: ModelSpec, backend: str) -> Path:
        return self.root / spec.id / backend

    def get(self, spec: ModelSpec, backend: str, quantization: Quantization | None = None) -> Build:
        """The build for this model and backend, built (and guarded) unless a valid one exists."""
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"Not an ONNX backend: {backend!r}")
        if backend == "onnx-int8":
            quantization = quantization or replace(
                quantization_for_cpu(), float_ffn_layers=self.float_layers
            )
        else:
            quantization = None
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
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Eager attention exports the plain matmul/softmax pattern ORT fuses into its Attention op.
    model = SentenceTransformer(
        spec.path, device="cpu", model_kwargs={"attn_implementation": "eager"}
    )
    # The first module of a SentenceTransformer is its Hugging Face transformer.
    transformer = cast("PreTrainedModel", model[0].auto_model).eval()
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
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = SKIP_LAYER_NORM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            optimization_options=options,
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
            nodes_to_exclude=float_nodes(onnx.load(str(source)), quantization),
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


def float_nodes(model: onnx.ModelProto, quantization: Quantization) -> list[str]:
    """The nodes of the fused model that stay in fp32 under ``quantization``."""
    names = []
    for node in model.graph.node:
        if node.op_type == "EmbedLayerNormalization" and quantization.float_embeddings:
            names.append(node.name)
        found = FFN_OUTPUT.search(node.name)
        if node.op_type == "MatMul" and found and int(found[1]) < quantization.float_ffn_layers:
            names.append(node.name)
    return names
