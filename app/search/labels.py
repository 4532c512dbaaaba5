"""Cluster labels: each cluster's most distinctive terms and two-word phrases (c-TF-IDF).

Terms common to most clusters ("reuters", "new" in a news collection) are left out, however
frequent, and a two-word phrase replaces its word where it carries much of the word's use
("exchange rate" for "rate"): measured on AG News and BANKING77 in bench/clustering.py.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter

import numpy as np

LABEL_TERMS = 3
TOP_TERMS = 5
# Only the start of each document feeds its labels: the terms that name a topic show up early
# (a SciFact abstract's title and first sentences), and long documents must not make
# clustering slow (5,000 characters each cost 2.9 s over 5,000 abstracts, 2,000 cost ~1 s).
LABEL_CHARS = 2000
# A term is common in a cluster when its rate there is at least this share of its rate over
# all clusters; common in more than half of the clusters, it names none of them.
COMMON_RATE = 0.5
# A phrase stands for its word when it makes up at least this share of the word's uses there.
PHRASE_SHARE = 0.4

# A word starts with a letter and may hold digits, apostrophes and inner hyphens.
# Phrase-ending punctuation is matched too, as a token of its own.
_TOKEN = re.compile(r"[^\W\d_](?:[\w'-]*[^\W_])?|[.,;:!?()\[\]{}\"\n]")
_STOP_WORDS = """
    a about above after again against all almost also am an and any are aren't as at be
    because been before being below between both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't down during each either else etc even ever every few for
    from further get gets got had hadn't has hasn't have haven't having he her here hers herself
    him himself his how however i i'd i'll i'm i've if in into is isn't it it's its itself just
    let's like may me might more most much must mustn't my myself need neither no nor not now of
    off often on once one only or other others our ours ourselves out over own per please quite
    rather really said same say says shall shan't she should shouldn't since so some still such
    than that that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those though through thus to too under until up upon us use
    used using very via was wasn't we we'd we'll we're we've were weren't what what's when
    where which while who whom whose why will with within without won't would wouldn't yet you
    you'd you'll you're you've your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def terms(text: str) -> list[str]:
    """A text's label terms: words that are not stop words, and bigrams of two such words.

    Bigrams never span punctuation, so "ATM, lost" gives no "atm lost".
    """
    tokens = _TOKEN.findall(text[:LABEL_CHARS].lower().replace("\u2019", "'"))
    # Punctuation tokens are one character long, so they drop out here too, breaking bigrams.
    kept = [t if len(t) > 2 and t not in STOP_WORDS else None for t in tokens]
    unigrams = [t for t in kept if t]
    bigrams = [f"{a} {b}" for a, b in zip(kept, kept[1:], strict=False) if a and b]
    return unigrams + bigrams


def distinctive_terms(texts: Sequence[str], labels: np.ndarray, k: int) -> list[list[str]]:
    """Per cluster, its top terms by c-TF-IDF (class-based TF-IDF), best first, non-redundant.

    A term's weight in a cluster is its frequency there (as a share of the cluster's terms)
    times log(1 + A / f), where f is its frequency over all clusters and A the average number
    of terms per cluster: frequent in this cluster, rare elsewhere.
    """
    members: list[list[str]] = [[] for _ in range(k)]
    for text, label in zip(texts, labels, strict=True):
        members[label] += terms(text)
    # Counting whole lists runs in C; merging Counters would loop in Python.
    counts = [Counter(found) for found in members]
    overall = Counter(chain.from_iterable(members))
    average = sum(overall.values()) / k
    totals = [sum(counter.values()) or 1 for counter in counts]
    common = _Common(counts, totals, overall)
    tops = []
    for counter, total in zip(counts, totals, strict=True):
        # A term must occur at least twice in its cluster (when any does) to name it.
        floor = 2 if total > len(counter) else 1
        weights = {
            term: count / total * math.log(1 + average / overall[term])
            for term, count in counter.items()
            if count >= floor
        }
        # Rank only the best few fully (sorting ~100k terms per cluster with a Python key
        # cost 0.3 s); on a tie a single word wins: "stolen" reads better than "card stolen".
        best = heapq.nlargest(TOP_TERMS * 10, weights.items(), key=itemgetter(1))
        ranked = [
            term
            for term, _ in sorted(best, key=lambda t: (-t[1], t[0].count(" "), t[0]))
            if not common(term)
        ]
        tops.append(_non_redundant(_phrases(ranked, counter), TOP_TERMS))
    return tops


class _Common:
    """Whether a term is common to most clusters (cached: each term is asked about once)."""

    def __init__(self, counts: list[Counter], totals: list[int], overall: Counter) -> None:
        self.counts, self.totals = counts, totals
        self.overall, self.size = overall, sum(overall.values()) or 1
        self.seen: dict[str, bool] = {}

    def __call__(self, term: str) -> bool:
        if term not in self.seen:
            floor = COMMON_RATE * self.overall[term] / self.size
            hits = sum(c[term] / t >= floor for c, t in zip(self.counts, self.totals, strict=True))
            self.seen[term] = len(self.counts) > 2 and hits > len(self.counts) / 2
        return self.seen[term]


def _phrases(ranked: list[str], counter: Counter) -> list[str]:
    """Each word replaced by the best-ranked phrase holding it that makes up much of its use."""
    out = []
    for term in ranked:
        if " " not in term:
            words_use = counter[term]
            term = next(
                (
                    phrase
                    for phrase in ranked
                    if " " in phrase
                    and term in phrase.split()
                    and counter[phrase] >= PHRASE_SHARE * words_use
                ),
                term,
            )
        if term not in out:
            out.append(term)
    return out


def _non_redundant(ranked: list[str], limit: int) -> list[str]:
    """The first ``limit`` terms that each add a word not already in an earlier term."""
    chosen: list[str] = []
    seen: set[str] = set()
    for term in ranked:
        words = set(term.split())
        if words <= seen:
            continue
        chosen.append(term)
        seen |= words
        if len(chosen) == limit:
            break
    return chosen
