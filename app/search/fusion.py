"""Hybrid fusion: how a semantic and a keyword ranking make one, and how much keyword counts.

Chosen on the train queries of three sets (SciFact; AG News titles finding their own article;
BANKING77 questions finding their intent) with ``python -m bench.fusion``: a hit's cosine plus a
keyword weight times its BM25 score over the best BM25 score. The weight is set per query by two
readings of the candidate lists:

- **coverage**: a keyword list whose best hit holds only a few of the query's words (by IDF;
  ``Store.keyword_coverage``) is mostly chance matches; below ``COVERAGE_RAMP`` it counts not at
  all. A fixed weight let such lists pull hybrid below semantic search alone (BANKING77 -0.030).
- **confidence**: a list whose top hit stands out from the rest (``standout``) knows its answer;
  one whose top scores are level does not. The weight grows with the keyword list's standout
  over the semantic list's (``CONFIDENCE`` per standard deviation, up to ``MAX_TRUST`` times).
  On train this gained SciFact +0.005, AG News +0.005 nDCG@10 over coverage alone.

Studied and left out, measured the same way: z-score (Qdrant's DBSF) and min-max normalisation,
reciprocal rank fusion, and a document's second-best chunk as a bonus (all equal or worse).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from app.search.query import Signal

KEYWORD_WEIGHT = 0.3  # the keyword weight of a query both lists are equally sure of
COVERAGE_RAMP = (0.2, 0.3)  # keyword counts from 0 to fully as coverage crosses this range
CONFIDENCE = 0.3  # the weight's change per standard deviation of standout between the lists
MAX_TRUST = 2.0  # the most the confidence reading multiplies the weight by
STANDOUT_LEAD = 10  # a top score's lead is over the mean of the next STANDOUT_LEAD - 1 scores
STANDOUT_SPREAD = 100  # in standard deviations of the top STANDOUT_SPREAD scores

K = TypeVar("K", int, str)  # what is ranked: chunk or document ids (the benchmark's own ids)


def standout(scores: list[float]) -> float:
    """How far the top of a best-first list of scores stands out: its lead over the mean of the
    next ones, in standard deviations of the top scores (0 when there is nothing to compare)."""
    if len(scores) < 2:
        return 0.0
    spread = float(np.std(scores[:STANDOUT_SPREAD]))
    if spread == 0:
        return 0.0
    return (scores[0] - float(np.mean(scores[1:STANDOUT_LEAD]))) / spread


def keyword_weight(coverage: float, semantic: float = 0.0, keyword: float = 0.0) -> float:
    """How much the keyword ranking counts in a query whose best keyword hit holds ``coverage``
    (0 to 1) of the query, where the semantic and keyword lists' tops stand out by ``semantic``
    and ``keyword`` (``standout``): 0 below the coverage ramp, at most KEYWORD_WEIGHT x MAX_TRUST."""
    low, high = COVERAGE_RAMP
    gate = min(1.0, max(0.0, (coverage - low) / (high - low)))
    trust = min(MAX_TRUST, max(0.0, 1.0 + CONFIDENCE * (keyword - semantic)))
    return KEYWORD_WEIGHT * gate * trust


def fuse(semantic: dict[K, Signal], keyword: dict[K, Signal], weight: float) -> dict[K, float]:
    """Every id's fused score: its cosine (0 if the semantic ranking lacks it) plus ``weight``
    times its keyword score over the keyword ranking's best."""
    best = _best(keyword)
    fused: dict[K, float] = {}
    for key in semantic.keys() | keyword.keys():
        total = s.score if (s := semantic.get(key)) is not None else 0.0
        if (k := keyword.get(key)) is not None:
            total += weight * k.score / best
        fused[key] = total
    return fused


def _best(signals: dict[K, Signal]) -> float:
    """The top score of a ranking, to scale the others by (1 when it is not positive)."""
    top_score = max((signal.score for signal in signals.values()), default=1.0)
    return top_score if top_score > 0 else 1.0
