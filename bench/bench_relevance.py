#!/usr/bin/env python3
"""Relevance: does the right thing come first? A generated mixed corpus with known relevant
items, 159 queries of seven kinds, nDCG@10, R@1 and MRR per mode and per kind, and the
fusion candidates side by side on the same ranked lists.

    python bench/bench_relevance.py                     # the scene model (tests/scene_model)
    python bench/bench_relevance.py --model local-dir:/path/to/model

Corpus (scenes from tests/scene_model/scenes.py, the model's own generator, never its
training seed): photos of scenes (some in colour pairs), videos of three captioned scenes
each, PDFs with a distinctive word per page, PDFs whose figures show scenes, PDFs whose pages
share a word but show different scenes, DOCX/TXT/Markdown/HTML passages with distinctive words
and phrases (and the same words scattered elsewhere), screenshots of words (read by OCR).

Query kinds: a distinctive word (one item holds it), a quoted phrase (its words also occur
apart elsewhere), a descriptive caption (the scene's photo), a caption plus a word three
pages share (only one shows the scene: words and pictures must both count), an image (a new
rendering of a scene: its photo), a composed query (image + "blue" - "red": the photo of the
recoloured scene), a filtered query (a caption with --type document / video: the figure's
page, the video's segment).

R@1: the first hit is relevant. MRR: 1 / rank of the first relevant hit in the top 10. A hit
matches a relevant item when the file matches and, where the item names one, the page or
the segment the moment starts in. Each relevant item has a gain (2: the answer, 1: also
right) for nDCG@10.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

SEED = 4242  # the corpus; the scene model trains on another seed
SCENE_MODEL = f"local-dir:{ROOT / 'tests' / 'scene_model' / 'scene-clip'}"
FILLER = "An ordinary page about gardens, rain and the history of bridges in the old town. "
SYLLABLES = [c + v for c in "bdfgkmnprstvz" for v in "aeu"]
PHRASE_WORDS = (
    "amber", "lantern", "festival", "harbour", "copper", "kettle", "winter", "orchard", "silent",
    "engine", "velvet", "thunder", "marble", "garden", "paper", "compass", "hollow", "river",
    "golden", "ladder", "crimson", "meadow", "quiet", "signal", "frozen", "market", "narrow",
    "bridge", "distant", "tower",
)  # fmt: skip
MODES = ("vector", "text", "hybrid", "auto")
KINDS = ("distinctive", "phrase", "caption", "mixed", "image", "composed", "filtered")


@dataclass(frozen=True)
class Relevant:
    path: str
    gain: int = 2
    page: int | None = None
    segment: tuple[float, float] | None = None

    def matches(self, hit: Any) -> bool:
        if hit.path != self.path:
            return False
        if self.page is not None and hit.page != self.page:
            return False
        return self.segment is None or (
            hit.t is not None and self.segment[0] - 1e-6 <= hit.t < self.segment[1]
        )


@dataclass
class Query:
    kind: str
    parts: list[str]  # as a shell would pass them to `mmsearch query`
    relevant: list[Relevant]
    kinds: tuple[str, ...] = ()  # --type


@dataclass
class Corpus:
    folder: Path
    queries: list[Query] = field(default_factory=list)


def words(n: int, rng: random.Random) -> list[str]:
    found: set[str] = set()
    while len(found) < n:
        found.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((3, 4)))))
    return sorted(found)


def make_corpus(folder: Path) -> Corpus:
    from dataclasses import replace as variant  # a scene with some attributes changed

    import docx
    from fpdf import FPDF
    from scene_model.scenes import COLOURS, Thing, caption, render, scenes

    rng = random.Random(SEED)
    corpus = Corpus(folder)
    q = corpus.queries
    docs, media, outside = folder / "docs", folder / "media", folder.parent / "queries"
    for d in (docs, media, outside):
        d.mkdir(parents=True, exist_ok=True)
    unique = iter(words(120, rng))
    pool = [s for s in scenes(SEED, 400) if not s.words]

    def pdf(path: Path, pages: list[tuple[str, Any]]) -> None:
        """Text pages are A4; a page with a figure is a square the figure nearly fills
        (a slide, a catalogue page), under one line of text."""
        doc = FPDF()
        doc.set_font("helvetica", size=12)
        for text, picture in pages:
            if picture is None:
                doc.add_page()
            else:
                doc.add_page(format=(200, 200))
                image = folder.parent / "figure.png"
                picture.save(image)
                doc.image(str(image), x=15, y=25, w=170)
            doc.set_xy(10, 10)
            doc.multi_cell(0, 8, text)
        doc.output(str(path))

    # Photos: 30 scenes, and 15 one-thing scenes with a recoloured twin.
    photos = pool[:30]
    for i, s in enumerate(photos):
        render(s, 256).save(media / f"photo {i:02d}.jpg", quality=92)
    singles = [s for s in pool[30:] if len(s.things) == 1 and s.count == 1][:15]
    twins = []
    for i, s in enumerate(singles):
        other = rng.choice([c for c in COLOURS if c not in (s.things[0].colour, s.background)])
        twin = variant(s, things=(Thing(s.things[0].shape, other),))
        twins.append((s, twin, other))
        render(s, 256).save(media / f"pair {i:02d} a.jpg", quality=92)
        render(twin, 256).save(media / f"pair {i:02d} b.jpg", quality=92)
    # Videos: 6 x 3 scenes of 2 s each.
    clips = pool[60:78]
    for v in range(6):
        segs = clips[v * 3 : v * 3 + 3]
        video(media / f"clip {v}.mp4", [render(s, 256) for s in segs], folder.parent)
    # PDFs: a distinctive word per page (3 x 4 pages); figures of scenes (4 x 2 pages).
    pdf_words: list[tuple[str, str, int]] = []
    for p in range(3):
        ws = [next(unique) for _ in range(4)]
        pdf(
            docs / f"report {p}.pdf",
            [(f"{FILLER * 3} The {w} was noted. {FILLER}", None) for w in ws],
        )
        pdf_words += [(w, str(docs / f"report {p}.pdf"), n) for n, w in enumerate(ws, 1)]
    figures = pool[80:88]
    for p in range(4):
        pair = figures[p * 2 : p * 2 + 2]
        pdf(
            docs / f"figures {p}.pdf",
            [(f"Figure {n}.", render(s, 256)) for n, s in enumerate(pair, 1)],
        )
    # Mixed: 20 words, each on 3 pages (of 3 PDFs), each page showing another scene.
    mixed = pool[100:160]
    mixed_pages: list[list[tuple[str, Any]]] = [[] for _ in range(3)]
    mixed_words = [next(unique) for _ in range(20)]
    for g, w in enumerate(mixed_words):
        for k in range(3):
            mixed_pages[k].append((f"Reference {w}. {FILLER}", render(mixed[g * 3 + k], 256)))
    for k in range(3):
        pdf(docs / f"atlas {k}.pdf", mixed_pages[k])
    # Passages: distinctive words in DOCX, TXT, Markdown, HTML; phrases, and their words apart.
    text_words: list[tuple[str, str]] = []
    for i in range(6):
        for ext in (".docx", ".txt", ".md", ".html"):
            w = next(unique)
            path = docs / f"note {i}{ext}"
            body = f"{FILLER * 2} Remember the {w} before leaving. {FILLER}"
            if ext == ".docx":
                d = docx.Document()
                d.add_paragraph(body)
                d.save(path)
            elif ext == ".md":
                path.write_text(f"# Note {i}\n\n{body}\n")
            elif ext == ".html":
                path.write_text(f"<html><body><p>{body}</p></body></html>")
            else:
                path.write_text(body)
            text_words.append((w, str(path)))
    phrases = []
    for i in range(20):
        a, b, c = rng.sample(PHRASE_WORDS, 3)
        phrases.append((f"{a} {b} {c}", str(docs / f"phrase {i}.txt")))
        (docs / f"phrase {i}.txt").write_text(f"{FILLER} The {a} {b} {c} was there. {FILLER}")
        (docs / f"apart {i}.txt").write_text(f"{c} of the {a} and {b}, {c} {b}. {a}. {FILLER}")
    # Screenshots of words, for OCR.
    shot_words = []
    for i in range(8):
        w = next(unique)
        screenshot(media / f"screen {i}.png", f"Error in module {w}")
        shot_words.append((w, str(media / f"screen {i}.png")))

    # Queries.
    for w, path, page in pdf_words:
        q.append(Query("distinctive", [w], [Relevant(path, page=page)]))
    for w, path in text_words + shot_words:
        q.append(Query("distinctive", [w], [Relevant(path)]))
    for phrase, path in phrases:
        q.append(Query("phrase", [f'"{phrase}"'], [Relevant(path)]))
    for i, s in enumerate(photos):
        q.append(Query("caption", [caption(s)], [Relevant(str(media / f"photo {i:02d}.jpg"))]))
    for g, w in enumerate(mixed_words):
        target = rng.randrange(3)
        relevant = [Relevant(str(docs / f"atlas {target}.pdf"), page=g + 1)]
        q.append(Query("mixed", [f"{caption(mixed[g * 3 + target])} {w}"], relevant))
    for i, s in enumerate(photos[:15]):
        again = outside / f"again {i:02d}.jpg"
        render(variant(s, jitter=s.jitter + 1), 256).save(again, quality=92)
        q.append(Query("image", [str(again)], [Relevant(str(media / f"photo {i:02d}.jpg"))]))
    for i, (s, _twin, other) in enumerate(twins):
        again = outside / f"pair {i:02d}.jpg"
        render(variant(s, jitter=s.jitter + 1), 256).save(again, quality=92)
        parts = [str(again), "+", other, "-", s.things[0].colour]
        q.append(Query("composed", parts, [Relevant(str(media / f"pair {i:02d} b.jpg"))]))
    for n, s in enumerate(figures):
        page = Relevant(str(docs / f"figures {n // 2}.pdf"), page=n % 2 + 1)
        q.append(Query("filtered", [caption(s)], [page], kinds=("document",)))
    for n, s in enumerate(clips[:7]):
        seg = Relevant(
            str(media / f"clip {n // 3}.mp4"), segment=(2.0 * (n % 3), 2.0 * (n % 3) + 2)
        )
        q.append(Query("filtered", [caption(s)], [seg], kinds=("video",)))
    return corpus


def screenshot(path: Path, text: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 260), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 900, 30], fill=(60, 60, 90))
    draw.text((30, 90), text, fill=(20, 20, 20), font=ImageFont.load_default(size=44))
    img.save(path)


def video(path: Path, frames: Sequence[Any], scratch: Path, seconds: float = 2.0) -> None:
    from mmsearch.indexing.extract.video import ffmpeg_binary

    inputs: list[str] = []
    for i, frame in enumerate(frames):
        still = scratch / f"still {i}.png"
        frame.save(still)
        inputs += ["-loop", "1", "-t", str(seconds), "-framerate", "10", "-i", str(still)]
    joined = "".join(f"[{i}:v]" for i in range(len(frames)))
    graph = f"{joined}concat=n={len(frames)}:v=1:a=0,format=yuv420p"
    subprocess.run(
        [ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-y", *inputs,
         "-filter_complex", graph, "-c:v", "libx264", "-g", "20", str(path)],
        check=True,
    )  # fmt: skip


# Metrics ---------------------------------------------------------------------------


def metrics(hits: Sequence[Any], relevant: Sequence[Relevant]) -> dict[str, float]:
    found: list[int] = []  # the gain at each rank (0: not relevant)
    used: set[int] = set()
    for h in hits[:10]:
        gain = 0
        for i, r in enumerate(relevant):
            if i not in used and r.matches(h):
                used.add(i)
                gain = r.gain
                break
        found.append(gain)
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(found))
    ideal = sorted((r.gain for r in relevant), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    first = next((i for i, g in enumerate(found) if g), None)
    return {
        "ndcg10": dcg / idcg if idcg else 0.0,
        "r1": 1.0 if found and found[0] else 0.0,
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
    }


def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 3) for k in rows[0]} if rows else {}


# Fusion candidates, on the same ranked lists ------------------------------------------


def candidate_rules() -> dict[str, Callable[..., float]]:
    from mmsearch.query import ranking
    from mmsearch.query.ranking import Source

    vector_lists = (Source.PICTURES, Source.PASSAGES)
    text_lists = (Source.EXACT, Source.STEMMED, Source.GRAMS)

    def rrf_old(c: Any, norms: Any, terms: Sequence[str]) -> float:
        """The previous rule: RRF (k = 60) over pictures, passages, stemmed BM25."""
        used = (Source.PICTURES, Source.PASSAGES, Source.STEMMED)
        return sum(1 / (60 + c.found[s][0]) for s in used if s in c.found)

    def rrf_weighted_floor(c: Any, norms: Any, terms: Sequence[str]) -> float:
        """RRF with words weighted 2 and vector rows counted only within a margin of the
        best of their list (a relevance floor)."""
        total = 0.0
        for s, (rank, sc, _row) in c.found.items():
            if s in vector_lists and norms.top[s] - sc > 0.05:
                continue
            total += (2.0 if s in text_lists else 1.0) / (60 + rank)
        return total

    def relative_score(c: Any, norms: Any, terms: Sequence[str]) -> float:
        """Weaviate's relative-score fusion: each list min-max scaled over what was
        fetched, summed."""
        total = 0.0
        for s, (_rank, sc, _row) in c.found.items():
            lo, hi = norms.low[s], norms.top[s]
            total += (sc - lo) / (hi - lo) if hi > lo else 1.0
        return total

    def gated(c: Any, norms: Any, terms: Sequence[str]) -> float:
        """Exact-match gating: a locator holding every query word outranks all others;
        within each group, pictures' cosine decides."""
        passage = c.passage()
        exact = ranking.coverage(passage, terms) == 1.0 and Source.EXACT in c.found
        cosine = max((c.found[s][1] for s in vector_lists if s in c.found), default=-1.0)
        return (1.0 if exact else 0.0) + 0.5 * (cosine + 1) / 2

    def floored(source: Source, score: float, norms: Any, margin: float) -> float:
        top = norms.top.get(source)
        return 0.0 if top is None else max(0.0, 1.0 - (top - score) / margin)

    def soft(source: Source, score: float, norms: Any, margin: float) -> float:
        top = norms.top.get(source)
        return 0.0 if top is None else math.exp(-(top - score) / margin)

    def convex(
        text_weight: float,
        margin: float,
        use_coverage: bool,
        passage_weight: float = 0.05,
        decay: bool = False,
    ) -> Callable[..., float]:
        fade = soft if decay else floored

        def rule(c: Any, norms: Any, terms: Sequence[str]) -> float:
            scores = {s: f[1] for s, f in c.found.items()}
            passage = c.passage()
            text = ranking.text_evidence(scores, norms, terms if use_coverage else (), passage)
            pictures = fade(Source.PICTURES, scores.get(Source.PICTURES, -2.0), norms, margin)
            passages = fade(Source.PASSAGES, scores.get(Source.PASSAGES, -2.0), norms, 0.02)
            rest = 1.0 - text_weight
            return (
                text_weight * text + (rest - passage_weight) * pictures + passage_weight * passages
            )

        return rule

    rules: dict[str, Callable[..., float]] = {
        "RRF k=60, 3 lists (before)": rrf_old,
        "weighted RRF + vector floor": rrf_weighted_floor,
        "relative score (min-max)": relative_score,
        "exact-match gating": gated,
    }
    for weight in (0.5, 0.6, 0.7):
        for margin in (0.02, 0.05, 0.1):
            rules[f"convex w_text={weight} margin={margin}"] = convex(weight, margin, True)
    rules["convex 0.6/0.1 without coverage"] = convex(0.6, 0.1, False)
    rules["convex 0.6/0.1, passages 0"] = convex(0.6, 0.1, True, 0.0)
    for margin in (0.03, 0.05, 0.1):
        for passages in (0.0, 0.05):
            name = f"convex 0.6, exp decay {margin}, passages {passages}"
            rules[name] = convex(0.6, margin, True, passages, decay=True)

    def gated_then(inner: Callable[..., float]) -> Callable[..., float]:
        def rule(c: Any, norms: Any, terms: Sequence[str]) -> float:
            exact = ranking.coverage(c.passage(), terms) == 1.0 and Source.EXACT in c.found
            return (1.0 if exact else 0.0) + inner(c, norms, terms)

        return rule

    for margin in (0.03, 0.1):
        for passages in (0.0, 0.05):
            inner = convex(0.6, margin, True, passages, decay=True)
            rules[f"gating, then exp decay {margin}, passages {passages}"] = gated_then(inner)
    return rules


# Running -------------------------------------------------------------------------------


def run_queries(settings: Any, corpus: Corpus) -> dict[str, Any]:
    from mmsearch.core.errors import UsageError
    from mmsearch.core.vocab import Mode
    from mmsearch.library import Library
    from mmsearch.query.compose import compose
    from mmsearch.query.filters import Filters
    from mmsearch.query.grammar import parse
    from mmsearch.query.ranking import Norms, collect, group, query_terms
    from mmsearch.query.search import evidence, term_weights
    from mmsearch.storage.store import open_collection

    lib = Library(settings, ask_server=False)
    coll = open_collection(settings)
    rules = candidate_rules()
    per_mode: dict[str, dict[str, list]] = {m: {k: [] for k in KINDS} for m in MODES}
    per_rule: dict[str, dict[str, list]] = {r: {k: [] for k in KINDS} for r in rules}
    for query in corpus.queries:
        filters = Filters(kinds=query.kinds)
        for mode in MODES:
            try:
                hits = lib.search(query.parts, top=10, filters=filters, mode=mode)
            except UsageError:
                continue  # a mode that needs words, asked with a picture
            per_mode[mode][query.kind].append(metrics(hits, query.relevant))
        parts = parse(query.parts)
        words = " ".join(p.words for p in parts if p.kind == "text" and p.weight > 0)
        if not words:
            continue
        exclude = sorted({p.value for p in parts if p.kind == "image"})
        vector = compose(settings, coll, parts)
        limit = 100
        lists = evidence(coll, Mode.HYBRID, vector, words, limit, filters.where(exclude))
        terms = term_weights(coll, query_terms(words))
        norms = Norms.of(lists, limit)
        low = {s: float(rows[-1]["score"]) for s, rows in lists.items() if rows}
        object.__setattr__(norms, "low", low)
        for name, rule in rules.items():
            cands = list(collect(lists).values())
            for c in cands:
                c.score = rule(c, norms, terms)
            cands.sort(key=lambda c: -c.score)  # stable: ties stay in list order, as before
            per_rule[name][query.kind].append(metrics(group(cands, False, terms), query.relevant))
    return {
        "modes": {m: {k: mean_of(v) for k, v in kinds.items()} for m, kinds in per_mode.items()},
        "fusion": {r: {k: mean_of(v) for k, v in kinds.items()} for r, kinds in per_rule.items()},
        "queries": {k: sum(1 for x in corpus.queries if x.kind == k) for k in KINDS},
    }


def measure(
    model: str, pretrained: str | None, keep: Path | None = None, reuse: bool = False
) -> dict[str, Any]:
    from mmsearch.core.config import Settings
    from mmsearch.library import Library

    work = keep or Path(tempfile.mkdtemp(prefix="mmsearch-relevance-"))
    try:
        settings = Settings(db=str(work / "store"), model=model, pretrained=pretrained)
        started = time.perf_counter()
        if reuse:  # the queries again, on the corpus and store a --keep run left
            corpus = make_corpus(work / "rebuilt")
            for q in corpus.queries:
                q.parts = [p.replace(str(work / "rebuilt"), str(work / "corpus")) for p in q.parts]
                q.relevant = [
                    dataclasses.replace(
                        r, path=r.path.replace(str(work / "rebuilt"), str(work / "corpus"))
                    )
                    for r in q.relevant
                ]
        else:
            corpus = make_corpus(work / "corpus")
            Library(settings, ask_server=False).index([str(corpus.folder)])
        indexed = time.perf_counter() - started
        result = run_queries(settings, corpus)
        result["index_s"] = round(indexed, 1)
        result["model"] = model
        return result
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def table(result: dict[str, Any]) -> str:
    lines = [f"relevance ({sum(result['queries'].values())} queries; model {result['model']})"]
    head = f"{'':<44}" + "".join(f"{k:>13}" for k in KINDS)
    wide = f"{'':<44}" + "".join(f"{k:>15}" for k in KINDS)
    lines += ["nDCG@10, R@1, MRR per mode and query kind", wide]
    for mode, kinds in result["modes"].items():
        cells = [
            f"{v['ndcg10']:.2f} {v['r1']:.2f} {v['mrr']:.2f}" if v else "—"
            for v in (kinds[k] for k in KINDS)
        ]
        lines.append(f"{mode:<44}" + "".join(f"{c:>15}" for c in cells))
    lines += ["", "fusion candidates (hybrid lists), nDCG@10 per kind (queries with words)", head]
    for name, kinds in result["fusion"].items():
        cells = [f"{kinds[k]['ndcg10']:.3f}" if kinds[k] else "—" for k in KINDS]
        lines.append(f"{name[:44]:<44}" + "".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=SCENE_MODEL)
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--keep", type=Path, default=None, help="build (and keep) the corpus here")
    ap.add_argument("--reuse", action="store_true", help="query the --keep corpus again")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "relevance.json")
    args = ap.parse_args()
    os.environ.setdefault("MMSEARCH_NO_SERVER", "1")
    result = measure(args.model, args.pretrained, args.keep, args.reuse)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
