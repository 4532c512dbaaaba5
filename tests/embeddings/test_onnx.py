"""ONNX backends: the build cache and its record, the quality guard's fallback, and (with the real
model) vectors that agree with torch's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from app.embeddings import backends, onnx_build
from app.embeddings import guard as guard_module
from app.embeddings.backends import compatible_backends, load_encoder
from app.embeddings.guard import GUARD_MIN_COSINE, GUARD_TEXTS
from app.embeddings.models import ModelSpec, bundled_minilm
from app.embeddings.onnx_build import ModelCache, Quantization, float_nodes, quantization_for_cpu
from tests.support.fakes import FakeEncoder


class Calls:
    def __init__(self) -> None:
        self.exports = 0
        self.quantized: list[Quantization] = []
        self.cosine = 0.999


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Export, quantization and guard replaced by stand-ins that write a file and count."""
    calls = Calls()

    def export(spec: ModelSpec, target: Path) -> None:
        calls.exports += 1
        target.write_bytes(b"onnx")

    def quantize(source: Path, target: Path, quantization: Quantization) -> None:
        calls.quantized.append(quantization)
        target.write_bytes(source.read_bytes() + b"-int8")

    def guard(spec: ModelSpec, path: Path, threads: int = 0) -> dict:
        return {"mean_cosine": calls.cosine, "passed": calls.cosine >= GUARD_MIN_COSINE}

    monkeypatch.setattr(onnx_build, "export_fused", export)
    monkeypatch.setattr(onnx_build, "quantize", quantize)
    monkeypatch.setattr(onnx_build, "guard", guard)
    return calls


@pytest.fixture
def spec(tmp_path: Path) -> ModelSpec:
    """A model directory with weights and a config (the stand-ins never read them)."""
    source = tmp_path / "weights"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"w" * 100)
    (source / "config.json").write_text("{}")
    return ModelSpec(id="tiny", path=str(source))


def test_a_build_is_cached_with_a_record_of_its_source(
    fake_build: Calls, spec: ModelSpec, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path / "models")
    build = cache.get(spec, "onnx-int8", Quantization("avx512_vnni"))
    assert build.path == tmp_path / "models/tiny/onnx-int8/model.onnx"
    assert build.path.read_bytes() == b"onnx-int8"
    record = json.loads((build.path.parent / "build.json").read_text())
    assert record["source"] == str(Path(spec.path).resolve())
    assert record["files"]["model.safetensors"]["size"] == 100
    assert record["quantization"]["preset"] == "avx512_vnni"
    assert set(record["versions"]) >= {"torch", "onnxruntime", "sentence-transformers"}
    assert len(record["weights_sha256"]) == 64
    assert record["guard"]["passed"]
    cache.get(spec, "onnx-int8", Quantization("avx512_vnni"))
    assert fake_build.exports == 1  # reused, not rebuilt
    assert not list((tmp_path / "models/tiny").glob(".*"))  # no temporary directories left


def test_changed_weights_versions_or_quantization_rebuild(
    fake_build: Calls, spec: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ModelCache(tmp_path / "models")
    vnni = Quantization("avx512_vnni")
    cache.get(spec, "onnx-int8", vnni)
    weights = Path(spec.path) / "model.safetensors"
    weights.write_bytes(b"x" * 101)  # new weights
    cache.get(spec, "onnx-int8", vnni)
    assert fake_build.exports == 2
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size, touched
    cache.get(spec, "onnx-int8", vnni)
    assert fake_build.exports == 3
    cache.get(spec, "onnx-int8", Quantization("avx2", reduce_range=True))  # another CPU
    assert fake_build.exports == 4
    versions = onnx_build._versions()
    monkeypatch.setattr(onnx_build, "_versions", lambda: {**versions, "onnxruntime": "9.9.9"})
    cache.get(spec, "onnx-int8", Quantization("avx2", reduce_range=True))
    assert fake_build.exports == 5
    cache.get(spec, "onnx-int8", Quantization("avx2", reduce_range=True))
    assert fake_build.exports == 5
    cache.get(spec, "onnx-int8", Quantization("avx2", reduce_range=True, float_ffn_layers=1))
    assert fake_build.exports == 6  # other layers kept in fp32


def test_the_cache_builds_int8_with_its_float_layers(
    fake_build: Calls, spec: ModelSpec, tmp_path: Path
) -> None:
    ModelCache(tmp_path / "models", float_layers=1).get(spec, "onnx-int8")
    assert fake_build.quantized[-1].float_ffn_layers == 1
    assert fake_build.quantized[-1].float_embeddings


def test_a_corrupt_record_rebuilds(fake_build: Calls, spec: ModelSpec, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "models")
    build = cache.get(spec, "onnx")
    (build.path.parent / "build.json").write_text("{not json")
    cache.get(spec, "onnx")
    assert fake_build.exports == 2
    assert fake_build.quantized == []  # fp32 ONNX is not quantized


class FakeTorchEncoder(FakeEncoder):
    def __init__(self, spec: ModelSpec, threads: int = 0) -> None:
        super().__init__(spec)


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(backends.LOADERS, "torch", lambda spec, *_: FakeTorchEncoder(spec))


def test_a_failing_guard_falls_back_to_torch_and_says_why(
    fake_build: Calls, fake_torch: None, spec: ModelSpec, tmp_path: Path, caplog
) -> None:
    fake_build.cosine = 0.95
    encoder = load_encoder(spec, "onnx-int8", tmp_path / "models")
    assert encoder.backend == "torch"
    assert encoder.requested_backend == "onnx-int8"
    assert "quality guard failed: mean cosine 0.9500" in encoder.fallback
    assert "falling back to torch" in caplog.text
    # The verdict is cached: the next start falls back without rebuilding.
    load_encoder(spec, "onnx-int8", tmp_path / "models")
    assert fake_build.exports == 1


def test_a_failing_build_falls_back_to_torch(
    fake_torch: None, spec: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spec: ModelSpec, target: Path) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_build, "export_fused", broken)
    encoder = load_encoder(spec, "onnx", tmp_path / "models")
    assert encoder.backend == "torch"
    assert "exporter exploded" in encoder.fallback
    assert not (tmp_path / "models/tiny/onnx").exists()


def test_health_reports_the_backend_and_the_fallback(make_client) -> None:
    encoder = FakeEncoder()
    encoder.backend = "torch"
    encoder.fallback = "quality guard failed: mean cosine 0.9500 to torch, worst text 0.9000"
    body = make_client(encoder, backend="onnx-int8").get("/health").json()
    assert body["backend"] == "torch"
    assert body["requested_backend"] == "onnx-int8"
    assert body["fallback"].startswith("quality guard failed")


def test_unknown_backend_is_refused(spec: ModelSpec) -> None:
    with pytest.raises(ValueError, match="Unknown backend"):
        load_encoder(spec, "tensorrt")


def test_quantization_preset_follows_the_cpu() -> None:
    assert quantization_for_cpu({"avx2", "avx512f", "avx512_vnni"}) == Quantization("avx512_vnni")
    assert quantization_for_cpu({"avx2", "avx512f"}).preset == "avx512"
    assert quantization_for_cpu({"avx2"}) == Quantization("avx2", reduce_range=True)


def test_float_nodes_are_the_embeddings_and_the_first_feed_forward_outputs() -> None:
    names = [
        ("EmbedLayerNormalization", "EmbedLayerNormalization_0"),
        ("Attention", "Attention_0"),
        ("MatMul", "/transformer/encoder/layer.0/attention/output/dense/MatMul"),
        ("MatMul", "/transformer/encoder/layer.0/intermediate/dense/MatMul"),
        *(("MatMul", f"/transformer/encoder/layer.{i}/output/dense/MatMul") for i in range(3)),
    ]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, [], [], name=name) for op, name in names], "g", [], []
    )
    model = onnx.helper.make_model(graph)
    assert float_nodes(model, Quantization("avx512_vnni", float_ffn_layers=2)) == [
        "EmbedLayerNormalization_0",
        "/transformer/encoder/layer.0/output/dense/MatMul",
        "/transformer/encoder/layer.1/output/dense/MatMul",
    ]
    plain = Quantization("avx512_vnni", float_embeddings=False, float_ffn_layers=0)
    assert float_nodes(model, plain) == []


def test_the_guard_bounds_the_mean_and_the_worst_text(
    monkeypatch: pytest.MonkeyPatch, spec: ModelSpec, tmp_path: Path
) -> None:
    monkeypatch.setattr(guard_module, "SentenceTransformerEncoder", lambda spec, threads: Echo())
    for cosines, passed in (([1.0] * 9 + [0.97], True), ([1.0] * 9 + [0.96], False)):
        monkeypatch.setattr(guard_module, "OnnxEncoder", lambda *a, c=cosines, **k: Echo(c))
        monkeypatch.setattr(guard_module, "GUARD_TEXTS", ["t"] * len(cosines))
        result = guard_module.guard(spec, tmp_path / "model.onnx")
        assert result["passed"] is passed, result
    monkeypatch.setattr(guard_module, "OnnxEncoder", lambda *a, **k: Echo([0.994] * 10))
    assert not guard_module.guard(spec, tmp_path / "model.onnx")["passed"]  # the mean


class Echo:
    """A stand-in encoder: unit vectors whose cosines to the reference's are ``cosines``."""

    concurrency = 1
    max_tokens = 10

    def __init__(self, cosines: list[float] | None = None) -> None:
        self.cosines = cosines
        self.model = None

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [[i] for i in range(len(texts))]

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        rows = [seq[0] for seq in batch]
        if self.cosines is None:
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(rows), 1))
        c = np.array([self.cosines[i] for i in rows], np.float32)
        return np.stack([c, np.sqrt(1 - c**2)], axis=1)


def test_compatible_backends() -> None:
    assert compatible_backends("torch", "onnx-int8")
    assert compatible_backends("remote", "remote")
    assert not compatible_backends("torch", "remote")


TEXTS = [
    "Aspirin reduces the risk of colorectal cancer.",
    "What is the boiling point of water at high altitude?",
    "0-dimensional biomaterials show inductive properties.",
    "A deficiency of vitamin B12 increases blood levels of homocysteine.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris, and it remained the "
    "tallest man-made structure in the world for four decades until the Chrysler Building.",
    *GUARD_TEXTS,
]


@pytest.fixture(scope="module")
def real_encoders(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("onnx-data")
    spec = bundled_minilm()
    return {backend: load_encoder(spec, backend, data / "models") for backend in backends.BACKENDS}


@pytest.mark.model
@pytest.mark.parametrize(
    ("backend", "mean", "least"), [("onnx", 0.9999, 0.9999), ("onnx-int8", 0.995, 0.97)]
)
def test_onnx_vectors_agree_with_torch(
    real_encoders: dict, backend: str, mean: float, least: float
) -> None:
    torch_encoder, encoder = real_encoders["torch"], real_encoders[backend]
    assert encoder.backend == backend, encoder.fallback
    assert encoder.dimensions == torch_encoder.dimensions == 384
    ids = torch_encoder.tokenize(TEXTS)
    expected, got = torch_encoder.encode(ids), encoder.encode(ids)
    # int8 drifts most on one- or two-token texts ("ok"); the guard bounds the mean and the worst.
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(expected * got, axis=1)
    assert cosines.mean() >= mean
    assert cosines.min() >= least
    # Padding in a batch changes nothing: fp32 runs the batch, int8 runs each sequence alone
    # (its activation scales are per run), so a vector never depends on its batch mates.
    alone = np.concatenate([encoder.encode([seq]) for seq in ids])
    np.testing.assert_allclose(alone, got, atol=1e-5)
    assert np.sum(alone * got, axis=1).min() >= 0.9999


@pytest.mark.model
@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_builds_leave_residual_adds_and_layer_norms_unfused(
    real_encoders: dict, backend: str
) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(str(real_encoders[backend].path)).graph.node}
    assert "SkipLayerNormalization" not in ops  # its CPU kernel is the slow one
    assert {"LayerNormalization", "Add", "Attention" if backend == "onnx" else "QAttention"} <= ops
