"""Fuzzy search over paths, ranked like fzf.

A query is one or more space-separated terms; every term must match a path as a
subsequence (smart case: a term with an uppercase letter is case-sensitive). The
ranking is fzf's: its FuzzyMatchV2 score (16 per matched character, bonuses at word
starts, after `/` and in camelCase, for consecutive runs and for the first character;
penalties for gaps), then shorter paths, then walk order.

Scoring every candidate exactly is O(length x term) in Python, too slow for tens of
thousands of paths, so the work is staged:
1. rapidfuzz tells, in C++, which paths hold the term as a subsequence (LCS = term);
2. a cheap estimate (fzf's V1: first alignment, shortened backwards, and the best
   contiguous occurrence) ranks those;
3. only the best few hundred get the exact V2 score that decides the order.
V2 is never below either estimate, and the estimates follow it closely, so the top of
the list matches fzf's while the cost stays linear in the number of paths.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .walk import walk

SCORE_MATCH = 16
GAP_START = -3
GAP_EXTENSION = -1
BONUS_BOUNDARY = 8
BONUS_NON_WORD = 8
BONUS_CAMEL = BONUS_BOUNDARY + GAP_EXTENSION
BONUS_CONSECUTIVE = -(GAP_START + GAP_EXTENSION)
FIRST_CHAR_MULTIPLIER = 2
BONUS_BOUNDARY_WHITE = BONUS_BOUNDARY + 2
BONUS_BOUNDARY_DELIMITER = BONUS_BOUNDARY + 1

WHITE, NON_WORD, DELIMITER, LOWER, UPPER, LETTER, NUMBER = range(7)
_DELIMITERS = "/,:;|"
_WHITES = " \t\n\v\f\r\x85\xa0"
EXACT_SCORED = 200  # candidates that get the exact score, per query


def _class_of(char: str) -> int:
    if "a" <= char <= "z":
        return LOWER
    if "A" <= char <= "Z":
        return UPPER
    if "0" <= char <= "9":
        return NUMBER
    if char in _WHITES:
        return WHITE
    if char in _DELIMITERS:
        return DELIMITER
    if char.isascii():
        return NON_WORD
    if char.islower():
        return LOWER
    if char.isupper():
        return UPPER
    if char.isnumeric():
        return NUMBER
    if char.isalpha():
        return LETTER
    if char.isspace():
        return WHITE
    return NON_WORD


_ASCII_CLASS = [_class_of(chr(i)) for i in range(128)]


def char_class(char: str) -> int:
    code = ord(char)
    return _ASCII_CLASS[code] if code < 128 else _class_of(char)


def _bonus_for(previous: int, current: int) -> int:
    if current > NON_WORD:
        if previous == WHITE:
            return BONUS_BOUNDARY_WHITE
        if previous == DELIMITER:
            return BONUS_BOUNDARY_DELIMITER
        if previous == NON_WORD:
            return BONUS_BOUNDARY
    if (previous == LOWER and current == UPPER) or (previous != NUMBER and current == NUMBER):
        return BONUS_CAMEL
    if current in (NON_WORD, DELIMITER):
        return BONUS_NON_WORD
    if current == WHITE:
        return BONUS_BOUNDARY_WHITE
    return 0


_BONUS = [[_bonus_for(p, c) for c in range(7)] for p in range(7)]


def _fold(char: str, case_sensitive: bool) -> str:
    """What fzf compares: lower-cased (unless case-sensitive), accents removed."""
    if not case_sensitive:
        char = char.lower()
    if not char.isascii():
        decomposed = unicodedata.normalize("NFD", char)
        if decomposed and decomposed[0].isascii():
            char = decomposed[0]
    return char


@dataclass(frozen=True)
class Term:
    text: str
    case_sensitive: bool

    @classmethod
    def parse(cls, query: str) -> list[Term]:
        """Space-separated terms; smart case: an uppercase letter makes a term case-sensitive."""
        terms = []
        for word in query.split():
            sensitive = any(c.isupper() for c in word)
            terms.append(cls(_fold_text(word, sensitive), sensitive))
        return terms


# --- exact score: fzf FuzzyMatchV2 ----------------------------------------------------


def v2_score(text: str, term: Term) -> int | None:
    """fzf's optimal alignment score of `term` in `text`, None when it does not match."""
    pattern = term.text
    m, n = len(pattern), len(text)
    if m == 0:
        return 0
    if m > n:
        return None
    folded = [_fold(c, term.case_sensitive) for c in text]
    bonus = []
    previous = WHITE
    for c in text:
        current = char_class(c)
        bonus.append(_BONUS[previous][current])
        previous = current
    # Row 0, first occurrences and the last index of the pattern's last char.
    first = []
    p = 0
    pchar = pattern[0]
    last = 0
    h0 = [0] * n
    c0 = [0] * n
    previous_h, in_gap = 0, False
    best = 0
    for i, char in enumerate(folded):
        if char == pchar:
            if p < m:
                first.append(i)
                p += 1
                pchar = pattern[min(p, m - 1)]
            last = i
        if char == pattern[0]:
            score = SCORE_MATCH + bonus[i] * FIRST_CHAR_MULTIPLIER
            h0[i], c0[i] = score, 1
            if m == 1 and score > best:
                best = score
            in_gap = False
        else:
            h0[i] = max(previous_h + (GAP_EXTENSION if in_gap else GAP_START), 0)
            c0[i] = 0
            in_gap = True
        previous_h = h0[i]
    if p != m:
        return None
    if m == 1:
        return best
    f0 = first[0]
    h_prev = h0
    c_prev = c0
    for row in range(1, m):
        start = first[row]
        pchar = pattern[row]
        h_row = [0] * n
        c_row = [0] * n
        in_gap = False
        left = 0
        for col in range(start, last + 1):
            s2 = left + (GAP_EXTENSION if in_gap else GAP_START)
            s1 = 0
            consecutive = 0
            if folded[col] == pchar:
                s1 = (h_prev[col - 1] if col > f0 else 0) + SCORE_MATCH
                b = bonus[col]
                consecutive = (c_prev[col - 1] if col > 0 else 0) + 1
                if consecutive > 1:
                    chunk_bonus = bonus[col - consecutive + 1]
                    if b >= BONUS_BOUNDARY and b > chunk_bonus:
                        consecutive = 1  # a stronger boundary starts a new chunk
                    else:
                        b = max(b, BONUS_CONSECUTIVE, chunk_bonus)
                if s1 + b < s2:
                    s1 += bonus[col]
                    consecutive = 0
                else:
                    s1 += b
            c_row[col] = consecutive
            in_gap = s1 < s2
            score = max(s1, s2, 0)
            h_row[col] = score
            left = score
            if row == m - 1 and score > best:
                best = score
        h_prev, c_prev = h_row, c_row
    return best


# --- estimates --------------------------------------------------------------------------


_CLASS_CODES = {i: chr(_ASCII_CLASS[i]) for i in range(128)}


def classes_of(text: str) -> str:
    """The class of every character, one per position (as chr(class)), computed in C
    for ASCII text."""
    codes = text.translate(_CLASS_CODES)
    if text.isascii():
        return codes
    return "".join(chr(char_class(c)) if ord(c) >= 128 else k for c, k in zip(text, codes))


# The bonus of a position, keyed by the classes of the character before it and of it.
_PAIR_BONUS = {chr(p) + chr(c): _BONUS[p][c] for p in range(7) for c in range(7)}
_START_BONUS = {chr(c): _BONUS[WHITE][c] for c in range(7)}


def _chain_score(classes: str, positions: list[int]) -> int:
    """fzf's calculateScore for matched `positions` (gaps between them penalised)."""
    first = positions[0]
    b = _PAIR_BONUS[classes[first - 1 : first + 1]] if first else _START_BONUS[classes[0]]
    score = SCORE_MATCH + b * FIRST_CHAR_MULTIPLIER
    first_bonus = b
    previous = first
    for index in positions[1:]:
        b = _PAIR_BONUS[classes[index - 1 : index + 1]]
        if index != previous + 1:
            score += GAP_START + GAP_EXTENSION * (index - previous - 2)
            first_bonus = b
        else:
            if b >= BONUS_BOUNDARY and b > first_bonus:
                first_bonus = b
            b = max(b, first_bonus, BONUS_CONSECUTIVE)
        score += SCORE_MATCH + b
        previous = index
    return score


def estimate(text: str, folded: str, term: Term, regex: re.Pattern[str]) -> int:
    """A lower bound of the V2 score: the greedy alignment shortened backwards (fzf's
    V1), or the best of the first contiguous occurrences."""
    classes = classes_of(text)
    pattern = term.text
    best = 0
    found = regex.search(folded)
    if found is not None:
        # Shorten backwards from the end of the first alignment, as V1 does.
        position = found.end()
        positions = []
        for char in reversed(pattern):
            position = folded.rfind(char, 0, position)
            positions.append(position)
        positions.reverse()
        best = _chain_score(classes, positions)
    start = folded.find(pattern)
    tries = 0
    while start >= 0 and tries < 4:
        best = max(best, _chain_score(classes, list(range(start, start + len(pattern)))))
        start = folded.find(pattern, start + 1)
        tries += 1
    return best


def _subsequence_regex(term: Term) -> re.Pattern[str]:
    return re.compile(
        "".join(f"({re.escape(c)})" + (".*?" if i < len(term.text) - 1 else "") for i, c in enumerate(term.text)),
        re.DOTALL,
    )


def rank(candidates: list[tuple[str, str]], query: str, limit: int) -> list[dict[str, Any]]:
    """Match `(path, type)` candidates against `query`, best first; at most `limit` (0 = all)."""
    terms = Term.parse(query)
    if not terms:
        return []
    paths = [path for path, _ in candidates]
    folded_insensitive = [_fold_text(p, False) for p in paths]
    # Imported on first use: rapidfuzz and libstdc++ are ~2.5 MB of RSS and 20 ms of start.
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    folded_sensitive = None
    alive: list[int] | range = range(len(paths))
    for term in terms:
        if term.case_sensitive:
            folded_sensitive = folded_sensitive or [_fold_text(p, True) for p in paths]
            source = folded_sensitive
        else:
            source = folded_insensitive
        indices = list(alive)
        choices = [source[i] for i in indices]  # a list: rapidfuzz iterates it 3x faster than a dict
        hits = process.extract(term.text, choices, scorer=LCSseq.similarity, score_cutoff=len(term.text), limit=None)
        alive = sorted(indices[position] for _, _, position in hits)
        if not alive:
            return []
    estimated = []
    for i in alive:
        total = 0
        for term in terms:
            folded = folded_sensitive[i] if term.case_sensitive and folded_sensitive else folded_insensitive[i]
            total += estimate(paths[i], folded, term, _subsequence_regex_cached(term))
        estimated.append((-total, len(paths[i]), i))
    estimated.sort()
    exact = []
    for _, length, i in estimated[: max(EXACT_SCORED, limit)]:
        scores = [v2_score(paths[i], term) for term in terms]
        if any(s is None for s in scores):
            continue
        exact.append((-sum(scores), length, i))  # type: ignore[arg-type]
    exact.sort()
    ordered = exact + estimated[max(EXACT_SCORED, limit) :]
    if limit:
        ordered = ordered[:limit]
    return [{"path": paths[i], "score": -score, "type": candidates[i][1]} for score, _, i in ordered]


@lru_cache(maxsize=256)
def _subsequence_regex_cached(term: Term) -> re.Pattern[str]:
    return _subsequence_regex(term)


def _fold_text(text: str, case_sensitive: bool) -> str:
    if text.isascii():
        return text if case_sensitive else text.lower()
    return "".join(_fold(c, case_sensitive) for c in text)


def _search(
    root: str, query: str, exclude_dirs: frozenset[str], exclude_hidden: bool, limit: int
) -> list[dict[str, Any]]:
    candidates = [
        (relative, "directory" if is_dir else "file")
        for relative, is_dir in walk(root, exclude_dirs, exclude_hidden)
        if relative != "."
    ]
    return rank(candidates, query, limit)


async def search(
    root: str, query: str, *, exclude_dirs: frozenset[str], exclude_hidden: bool = True, limit: int = 20
) -> dict[str, Any]:
    matches = await asyncio.to_thread(_search, root, query, exclude_dirs, exclude_hidden, limit)
    return {"matches": matches, "total": len(matches)}
