"""A synthetic news corpus for the storage benchmarks: deterministic chunk texts and unit vectors.

Texts: 180 words a chunk drawn from a Zipf-distributed vocabulary of 60,000 pronounceable pseudo-words
(a few very common words, a long tail of rare ones, like news text), plus one "name" per article that
appears in all its chunks. Vectors: 768-dim unit vectors clustered around 2,000 topic centroids (cosine to
their centroid ~0.7, as sentence embeddings cluster by topic), so approximate indexes face structured data
rather than uniform noise. Questions: 5 words of one chunk (a name, rare and common words); their vectors
are that chunk's vector plus noise. Everything is generated in blocks, so 1M chunks never sit in memory as
Python strings at once.
"""

from __future__ import annotations

import numpy as np

DIM = 768
WORDS_PER_CHUNK = 180
VOCAB = 60_000
TOPICS = 2_000
CHUNKS_PER_ARTICLE = 3
BLOCK = 10_000
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables


def vocabulary(size: int = VOCAB, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    words, seen = [], set()
    while len(words) < size:
        w = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), rng.integers(2, 5)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class Corpus:
    """``n`` synthetic chunks (3 per article), generated block by block from ``seed``."""

    def __init__(self, n: int, seed: int = 1):
        self.n, self.seed = n, seed
        self.words = vocabulary()
        ranks = np.arange(1, len(self.words) + 1)
        p = 1.0 / ranks ** 1.07
        self.cdf = np.cumsum(p / p.sum())
        rng = np.random.default_rng(seed + 1000)
        c = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
        self.centroids = c / np.linalg.norm(c, axis=1, keepdims=True)

    def texts(self, start: int, stop: int) -> list[str]:
        """Texts of chunks ``start`` (a multiple of BLOCK) to ``stop`` (at most one block further)."""
        assert start % BLOCK == 0 and stop - start <= BLOCK
        rng = np.random.default_rng((self.seed, start))
        idx = np.searchsorted(self.cdf, rng.random((stop - start, WORDS_PER_CHUNK)) * self.cdf[-1])
        w = self.words
        return [f"Name{i // CHUNKS_PER_ARTICLE} " + " ".join([w[j] for j in row])
                for row, i in zip(idx.tolist(), range(start, stop))]

    def vectors(self, start: int, stop: int) -> np.ndarray:
        assert start % BLOCK == 0 and stop - start <= BLOCK
        rng = np.random.default_rng((self.seed, start, 1))
        topics = np.random.default_rng((self.seed, 2)).integers(0, TOPICS, self.n)[start:stop]
        v = self.centroids[topics] + rng.standard_normal((stop - start, DIM)).astype(np.float32) * 0.035
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def one(self, i: int) -> tuple[str, np.ndarray]:
        start = i - i % BLOCK
        stop = min(self.n, start + BLOCK)
        return self.texts(start, stop)[i - start], self.vectors(start, stop)[i - start]

    def questions(self, count: int, seed: int = 99) -> list[tuple[str, np.ndarray, int]]:
        """``(question text, question vector, source chunk number)``."""
        rng = np.random.default_rng(seed)
        out = []
        for i in sorted(rng.choice(self.n, size=count, replace=False)):
            text, vec = self.one(int(i))
            words = text.split()
            picked = [words[0]] + list(rng.choice(words[1:], size=4, replace=False))
            v = vec + rng.standard_normal(DIM).astype(np.float32) * 0.03
            out.append((" ".join(picked), (v / np.linalg.norm(v)).astype(np.float32), int(i)))
        return out

    def blocks(self):
        for start in range(0, self.n, BLOCK):
            yield start, min(self.n, start + BLOCK)
