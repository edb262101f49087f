"""Fusion as a function of the evidence: each list's order counts, the order the lists come in
does not, and a locator's picture and passages are one candidate. Scores are calibrated: a
picture counts by how far it stands out from what the query scores on the library, a passage
by how much of the query's meaning its words carry."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mmsearch.core.vocab import Mode, Sort
from mmsearch.doors.protocol import SearchRequest
from mmsearch.query.filters import Filters
from mmsearch.query.grammar import Part
from mmsearch.query.ranking import (
    MATCH,
    Calibration,
    Candidate,
    Hit,
    Source,
    coverage,
    evidence_fusion,
    fuse,
    group,
    query_terms,
    text_evidence,
)
from mmsearch.query.search import sort_hits


def row(path: str, score: float, text: str | None = None, page: int | None = None) -> dict:
    kind = "document" if text is not None or page is not None else "image"
    return {
        "path": path,
        "kind": kind,
        "t": None,
        "t_end": None,
        "page": page,
        "text": text,
        "score": score,
        "taken": None,
    }


# A library where the query's cosines centre on 0.2 with a spread of 0.05, and gibberish's
# best picture stands out by 2 spreads.
CAL = Calibration(centre=0.2, spread=0.05, noise=2.0)


def order(lists: dict[Source, list[dict[str, Any]]], terms: tuple[str, ...] = ("word",)) -> list:
    return [c.key for c in fuse(lists, terms, CAL)]


BASE = {
    Source.PICTURES: [row("/p1.jpg", 0.30), row("/p2.jpg", 0.29)],
    Source.PASSAGES: [row("/d1.txt", 0.90, "word one"), row("/d2.txt", 0.89, "word two")],
    Source.EXACT: [row("/d1.txt", 4.0, "word one"), row("/d2.txt", 3.0, "word two")],
    Source.STEMMED: [row("/d1.txt", 2.0, "word one"), row("/d2.txt", 1.5, "word two")],
}


@pytest.mark.parametrize("source", list(BASE))
def test_fusion_uses_each_lists_order(source: Source) -> None:
    """Within any one list, the row above wins when the rest of the evidence is equal; swap
    the two rows of that list (their scores stay with their places) and the fused order of
    the pair swaps too."""
    first, second = BASE[source][0]["path"], BASE[source][1]["path"]
    lists = {source: BASE[source]}
    assert [k[0] for k in order(lists)] == [first, second]
    swapped = [
        {**BASE[source][1], "score": BASE[source][0]["score"]},
        {**BASE[source][0], "score": BASE[source][1]["score"]},
    ]
    assert [k[0] for k in order({source: swapped})] == [second, first]


def test_no_tie_is_broken_by_the_order_the_lists_come_in() -> None:
    tied = {
        Source.PICTURES: [row("/b.jpg", 0.3), row("/a.jpg", 0.3)],
        Source.EXACT: [row("/c.txt", 2.0, "word"), row("/d.txt", 2.0, "word")],
    }
    orders = {
        tuple(order(dict(p)))
        for p in itertools.permutations(tied.items())
        for p in [[(s, list(reversed(r))) for s, r in p], list(p)]
    }
    assert len(orders) == 1


def test_a_word_only_full_text_knows_beats_the_best_picture() -> None:
    lists = {
        Source.PICTURES: [row("/photo.jpg", 0.35)],
        Source.PASSAGES: [row("/other.pdf", 0.95, "gardens", 1)],
        Source.EXACT: [row("/report.pdf", 1.2, "the xylophone", 2)],
        Source.STEMMED: [row("/report.pdf", 1.1, "the xylophone", 2)],
    }
    assert order(lists, ("xylophone",))[0] == ("/report.pdf", 2, None)


def test_a_pages_picture_and_passage_are_one_candidate_and_the_passage_is_the_snippet() -> None:
    picture = {**row("/r.pdf", 0.31, None, 2), "kind": "document"}
    lists = {
        Source.PICTURES: [picture],
        Source.EXACT: [row("/r.pdf", 3.0, "page one talks of a zebu", 1)],
        Source.PASSAGES: [row("/r.pdf", 0.9, "page two passage", 2)],
    }
    cands = fuse(lists, ("zebu",), CAL)
    assert sorted(c.key for c in cands) == [("/r.pdf", 1, None), ("/r.pdf", 2, None)]
    (hit,) = group(cands, terms=("zebu",))
    assert (hit.page, hit.snippet) == (1, "page one talks of a zebu")


def test_an_exact_word_outranks_its_stemmed_variants() -> None:
    lists = {
        Source.EXACT: [row("/exact.txt", 1.0, "homogeneity of variance")],
        Source.STEMMED: [
            row("/variant.txt", 3.0, "homogeneous homogeneous homogeneous"),
            row("/exact.txt", 1.0, "homogeneity of variance"),
        ],
    }
    assert order(lists, ("homogeneity",))[0][0] == "/exact.txt"


def test_query_terms_drop_stop_words_and_split_cjk_into_bigrams() -> None:
    assert query_terms("the Red car at night") == ["red", "car", "night"]
    assert query_terms("图书馆") == ["图书", "书馆"]


def test_coverage_counts_exact_words_fully_and_variants_half() -> None:
    assert coverage("a red car", ["red", "car"]) == 1.0
    assert coverage("homogeneous mixture", ["homogeneity"]) == 0.5
    assert coverage("a blue boat", ["red", "car"]) == 0.0


def test_sorting_by_date_keeps_the_hits_and_puts_undated_ones_last() -> None:
    hits = [
        Hit("/a", "image", 0.9, taken=30.0),
        Hit("/b", "image", 0.8, taken=None),
        Hit("/c", "image", 0.7, taken=10.0),
    ]
    assert [h.path for h in sort_hits(hits, Sort.DATE)] == ["/c", "/a", "/b"]
    assert [h.path for h in sort_hits(hits, Sort.NEWEST)] == ["/a", "/c", "/b"]
    assert sort_hits(hits, Sort.SCORE) == hits


def test_the_sort_travels_over_the_wire() -> None:
    parts = (Part("text", "cat", 1.0),)
    request = SearchRequest("m", None, parts, 5, Filters(), False, Mode.AUTO, Sort.NEWEST)
    assert SearchRequest.from_wire(request.to_wire()).sort == Sort.NEWEST


def test_words_count_by_their_weight() -> None:
    weights = {"red": 0.7, "circle": 1.0, "kelvaro": 3.0}
    assert coverage("Reference kelvaro.", weights) == pytest.approx(3.0 / 4.7)
    assert coverage("a red thing", weights) == pytest.approx(0.7 / 4.7)
    assert coverage("a red circle, kelvaro", weights) == 1.0


def test_a_picture_counts_by_how_far_it_stands_out_not_by_its_cosine() -> None:
    """The same standout scores the same on two models' cosine scales."""
    narrow = Calibration(centre=0.20, spread=0.02, noise=2.0)  # CLIP's text-to-picture band
    wide = Calibration(centre=0.10, spread=0.30, noise=2.0)
    assert narrow.picture(0.20 + 0.02 * 2.4) == pytest.approx(wide.picture(0.10 + 0.30 * 2.4))


def test_a_picture_standing_out_as_gibberish_does_is_weak_and_past_1_1x_it_is_a_match() -> None:
    def at(multiple: float) -> float:
        return CAL.picture(CAL.centre + CAL.spread * CAL.noise * multiple)

    assert at(-1.0) == 0.0 and at(0.5) < 0.05 and 0.25 < at(1.0) < 0.4
    assert at(1.09) < MATCH < at(1.11)
    assert 0.9 < at(1.5) < 1.0


def test_a_picture_query_counts_by_the_share_of_the_way_to_itself() -> None:
    own = Calibration(centre=0.4, spread=0.1, noise=None, ceiling=1.0)
    assert own.picture(0.4) == 0.0
    assert own.picture(0.4 + 0.6 * 0.69) < MATCH < own.picture(0.4 + 0.6 * 0.71)
    assert 0.8 < own.picture(0.99) < 1.0


def candidate(text: str | None = None, **scores: float) -> Candidate:
    """One locator with the given lists' scores (a picture row when no text is given)."""
    c = Candidate(("/f", None, None), row("/f", 0.0, text))
    for source, value in scores.items():
        c.found[Source(source)] = (
            1,
            value,
            row("/f", value, text if source != "pictures" else None),
        )
    return c


def test_one_incidental_word_of_a_description_is_weak_text_evidence() -> None:
    """A passage that shares "small" with a description of a picture carries little of it;
    the words no passage holds count against it (weighed as the rarest)."""
    weights = {"small": 1.5, "green": 5.5, "circle": 5.5, "top": 2, "blue": 3, "background": 5.5}
    assert text_evidence(candidate("a small marsupial", exact=7.0), weights) < 0.1


def test_words_scattered_over_unrelated_sentences_do_not_add_up() -> None:
    terms = ("blue", "circle", "yellow", "background")
    near = candidate("a blue circle on a yellow background", exact=1.0)
    filler = " ".join(["and then we walked home"] * 4)
    apart = candidate(
        f"a blue van. {filler} a circle. {filler} yellow. {filler} background", exact=1.0
    )
    assert text_evidence(near, terms) == 1.0 and text_evidence(apart, terms) <= 0.25**2


def test_half_of_a_descriptions_words_in_everyday_prose_is_no_match() -> None:
    """Everyday sentences share common words with long descriptions ("two small ... on a
    black background"): half of the query's weight is far from a match, 70% is one."""
    terms = ("two", "small", "green", "triangles", "black", "background")
    half = candidate("the recipe needs two small onions and a black pot", exact=1.0)
    most = candidate("two small green triangles on a black rug", exact=1.0)
    assert text_evidence(half, terms) < 0.1
    assert 0.5 <= text_evidence(most, terms) < 0.9


def test_a_passage_holding_every_query_word_is_full_text_evidence() -> None:
    weights = {"quarterly": 2.0, "invoice": 3.0}
    assert text_evidence(candidate("the quarterly invoice", exact=1.0), weights) == 1.0
    assert text_evidence(candidate("the quarterly invoice", stemmed=1.0), weights) == 0.5


def test_a_pages_picture_and_its_words_count_together() -> None:
    cosine = CAL.centre + CAL.spread * CAL.noise * 1.15
    terms = ("kelvaro", "circle")
    picture = evidence_fusion(candidate(pictures=cosine), CAL, terms)
    text = evidence_fusion(candidate("kelvaro", exact=2.0), CAL, terms)
    page = candidate("kelvaro", exact=2.0)
    page.found[Source.PICTURES] = (1, cosine, row("/f", cosine))
    both = evidence_fusion(page, CAL, terms)
    assert both > max(picture, text) and both == pytest.approx(1 - (1 - picture) * (1 - text))


def test_a_passage_never_borrows_a_pictures_similarity() -> None:
    """CLIP's text-to-text similarity is high for any two texts: alone it is no evidence."""
    assert evidence_fusion(candidate("other words", passages=0.97), CAL, ("word",)) == 0.0


def test_a_query_the_model_places_among_gibberish_gets_nothing_from_pictures() -> None:
    """Words a model does not know embed where gibberish does: however far a picture stands
    out for them, it says nothing."""
    import numpy as np

    from mmsearch.query.search import meaning

    rng = np.random.default_rng(0)
    common = rng.standard_normal(32)
    nulls = common + 0.3 * rng.standard_normal((7, 32))
    nulls /= np.linalg.norm(nulls, axis=1, keepdims=True)
    gibberish = (common + 0.3 * rng.standard_normal(32)) / np.linalg.norm(common)
    other = rng.standard_normal(32)
    other -= (other @ common) / (common @ common) * common  # nothing like the null queries
    assert meaning(nulls, gibberish / np.linalg.norm(gibberish)) < 0.3
    assert meaning(nulls, other / np.linalg.norm(other)) == 1.0
    silent = Calibration(centre=0.2, spread=0.05, noise=2.0, meaning=0.0)
    assert silent.picture(0.2 + 0.05 * 2.0 * 3) == 0.0
