"""The search snapshot's passages in SQLite FTS5: word queries answered without LanceDB.

Importing LanceDB costs more than a whole one-shot query, and the store's full-text indexes
live there; a snapshot that also holds its passages in one SQLite file (Python's own sqlite3,
BM25 built in) answers the three full-text lists of a hybrid query by itself. Row ids are the
snapshot's row numbers, so a hit joins the snapshot's vectors and result rows directly. The
three indexes read words as the store's do: exact words, stemmed English words (Porter), and
CJK character bigrams.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.core.words import STOP_WORDS, cjk_runs

if TYPE_CHECKING:
    import numpy as np

NAME = "passages.sqlite"
# The store's full-text columns (storage.store._TEXT_INDEXES) -> the FTS5 table reading alike.
TABLES = {"words": "exact", "text": "stemmed", "grams": "grams"}
_SCHEMA = (
    "CREATE VIRTUAL TABLE exact USING fts5(text, tokenize='unicode61 remove_diacritics 0')",
    "CREATE VIRTUAL TABLE stemmed USING fts5(text, tokenize='porter unicode61')",
    "CREATE VIRTUAL TABLE grams USING fts5(text, tokenize='unicode61 remove_diacritics 0')",
)


def bigrams(runs: str | None) -> str | None:
    """CJK runs (space-separated) as their character bigrams, space-separated: what the
    `grams` table holds and is asked (a run of one character is itself)."""
    if not runs:
        return None
    found = [run[i : i + 2] for run in runs.split() for i in range(max(1, len(run) - 1))]
    return " ".join(found)


class Writer:
    """Fills a new FTS5 file, one passage at a time, in one transaction."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path)
        for statement in _SCHEMA:
            self.conn.execute(statement)

    def add(self, rows: Iterable[tuple[int, str]]) -> None:
        rows = list(rows)
        self.conn.executemany("INSERT INTO exact(rowid, text) VALUES (?, ?)", rows)
        self.conn.executemany("INSERT INTO stemmed(rowid, text) VALUES (?, ?)", rows)
        grams = [(i, g) for i, text in rows if (g := bigrams(cjk_runs(text)))]
        self.conn.executemany("INSERT INTO grams(rowid, text) VALUES (?, ?)", grams)

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()


class FullText:
    """Read-only, shared by a server's threads (one connection, one lock)."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        self.lock = threading.Lock()

    def search(
        self, words: str, column: str, limit: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """(row, BM25) of the passages matching `words` in the index that reads as the
        store's `column` does, best first, at most `limit`, among the rows `allowed`."""
        table = TABLES[column]
        expression = match_expression(words, grams=table == "grams")
        if not expression:
            return []
        sql = f"SELECT rowid, -bm25({table}) FROM {table} WHERE {table} MATCH ? ORDER BY 2 DESC"
        with self.lock:
            if allowed is None:
                return self.conn.execute(sql + " LIMIT ?", (expression, limit)).fetchall()
            found = self.conn.execute(sql, (expression,)).fetchall()
        return [(row, score) for row, score in found if allowed[row]][:limit]

    def count(self, term: str, column: str, most: int) -> int:
        """How many passages hold `term` (at most `most`)."""
        table = TABLES[column]
        expression = match_expression(term, grams=table == "grams")
        if not expression:
            return 0
        sql = f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT ?)"
        with self.lock:
            return int(self.conn.execute(sql, (expression, most)).fetchone()[0])


def match_expression(words: str, grams: bool = False) -> str:
    """The query's words as an FTS5 expression the way the store's full-text search reads
    them: any of the words (stop words out), a "quoted phrase" as a phrase; for the bigram
    index, any of the query's CJK bigrams."""
    if grams:
        found = (bigrams(cjk_runs(words)) or "").split()
        return " OR ".join(_quoted(g) for g in dict.fromkeys(found))
    parts: list[str] = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', words):
        if phrase:
            tokens = re.findall(r"\w+", phrase.lower())
            if tokens:
                parts.append(_quoted(" ".join(tokens)))
            continue
        parts += [_quoted(t) for t in re.findall(r"\w+", word.lower()) if t not in STOP_WORDS]
    return " OR ".join(dict.fromkeys(parts))


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
