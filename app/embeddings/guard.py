"""The quality guard: an ONNX build serves only if its vectors agree with torch's, on average
and on its worst text."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np

from app.embeddings.encoder import encode_batches
from app.embeddings.models import ModelSpec
from app.embeddings.onnx import OnnxEncoder
from app.embeddings.torch_encoder import SentenceTransformerEncoder

# A mean cosine of 0.99 let through an int8 build that lost up to 0.006 nDCG@10 against fp32;
# the build that keeps its sensitive layers in fp32 reaches 0.996 with its worst text at 0.977
# (a one-word text), and stays within 0.003 (README, "int8 quality").
GUARD_MIN_COSINE = 0.995
GUARD_WORST_COSINE = 0.97

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


class GuardResult(TypedDict):
    """How close an ONNX build's vectors came to torch's, as kept in the build record."""

    texts: int
    mean_cosine: float
    min_cosine: float
    threshold: float
    worst_threshold: float
    passed: bool


def guard(spec: ModelSpec, path: Path, threads: int = 0) -> GuardResult:
    """Mean and least cosine of the ONNX model's vectors to torch fp32 on GUARD_TEXTS; it
    passes if both reach their thresholds."""
    reference = SentenceTransformerEncoder(spec, threads=threads)
    candidate = OnnxEncoder(spec, path, threads=threads, base=reference.model)
    ids = reference.tokenize(GUARD_TEXTS)
    ids = [seq[: reference.max_tokens] for seq in ids]
    batches = [ids[i : i + 16] for i in range(0, len(ids), 16)]
    expected = np.concatenate(encode_batches(reference, batches))
    got = np.concatenate(encode_batches(candidate, batches))
    cosines = np.sum(expected * got, axis=1)
    mean, least = float(cosines.mean()), float(cosines.min())
    return {
        "texts": len(GUARD_TEXTS),
        "mean_cosine": round(mean, 6),
        "min_cosine": round(least, 6),
        "threshold": GUARD_MIN_COSINE,
        "worst_threshold": GUARD_WORST_COSINE,
        "passed": mean >= GUARD_MIN_COSINE and least >= GUARD_WORST_COSINE,
    }
