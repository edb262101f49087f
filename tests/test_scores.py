"""What a score means, asserted with the scene model on a library a person has: pictures
beside everyday documents whose prose shares the pictures' common words. A description finds
its picture before any document, a document's rare word finds its page, nonsense finds
nothing (and says so), and a score stays put when unrelated files are added."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_pdf, query_json, run
from scene_model.scenes import Scene, Thing, caption, render, scenes
from test_terminal import in_terminal

pytestmark = pytest.mark.usefixtures("with_scene_model")

SCENES = {
    "red-circle": Scene("white", things=(Thing("circle", "red"),), size="large"),
    "blue-on-yellow": Scene("yellow", things=(Thing("circle", "blue"),), size="large"),
    "orange-square": Scene("blue", things=(Thing("square", "orange"),), size="large"),
    "stars": Scene("black", things=(Thing("star", "yellow"),), count=3),
    "triangle": Scene("green", "striped", (Thing("triangle", "white"),), position="left"),
    "stop": Scene("gray", words="stop", ink="red"),
    "green-cross": Scene("white", things=(Thing("cross", "green"),), size="large"),
    "purple-on-black": Scene("black", things=(Thing("square", "purple"),), size="large"),
}
# Everyday prose that shares the captions' words (colours, shapes, sizes, "background")
# without describing any picture.
EVERYDAY = [
    "The small marsupial sleeps during the day and feeds at night in the green forest.",
    "Please write the word stop at the top of the form, in red ink, on a white background.",
    "Our blue van is parked behind the large yellow shed at the back of the yard.",
    "Draw a circle around the right answer and a cross next to the wrong one.",
    "The background check took three weeks; the agency sent a gray folder of forms.",
    "Three stars for the hotel, a black taxi to the station and a purple umbrella.",
    "A striped towel, a square table and an orange on a plate by the window.",
    "The triangle player waited forty bars for his one note in the large hall.",
]
RARE = "kelvaro"
# The scene model maps some gibberish ("qwertyuiop zxcv") onto one scene as strongly as a
# description: no statistic of the library can tell those apart (bench/bench_relevance.py
# reports the recall over more nonsense). These it does not.
NONSENSE = ["asdfghjkl", "a dog running on the beach"]


def index(folder: Path) -> None:
    result = run("index", "-q", "--ocr", "never", str(folder))
    assert result.exit_code == 0, result.stderr


def pictures(folder: Path) -> None:
    """The named scenes, and 24 others of the model's own generator (a library of a few
    dozen pictures: the calibration's statistics need more than a handful)."""
    others = {f"other {n:02d}": s for n, s in enumerate(scenes(31, 24))}
    for name, scene in {**SCENES, **others}.items():
        path = folder / "pictures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        render(scene, 192).save(path)


def documents(folder: Path, copies: int = 1) -> None:
    import docx

    docs = folder / "documents"
    docs.mkdir(parents=True, exist_ok=True)
    for n in range(copies):
        make_pdf(docs / f"letters {n}.pdf", EVERYDAY[:4])
        paper = docx.Document()
        for line in EVERYDAY[4:]:
            paper.add_paragraph(line)
        paper.save(docs / f"minutes {n}.docx")
        (docs / f"diary {n}.txt").write_text("\n".join(reversed(EVERYDAY)))


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    pictures(folder)
    documents(folder)
    make_pdf(folder / "documents" / "report.pdf", [EVERYDAY[0], f"The {RARE} was noted here."])
    index(folder)
    return folder


@pytest.mark.parametrize("name", SCENES)
def test_a_description_finds_its_picture_before_any_document(library: Path, name: str) -> None:
    hits = query_json(caption(SCENES[name]))
    assert hits, "a description of a picture in the library is a good match"
    assert hits[0]["path"] == str(library / "pictures" / f"{name}.png")


def test_a_documents_rare_word_brings_it_first_at_its_page_with_its_snippet(
    library: Path,
) -> None:
    best = query_json(RARE)[0]
    assert (best["path"], best["page"]) == (str(library / "documents" / "report.pdf"), 2)
    assert RARE in best["snippet"] and best["score"] >= 0.9


@pytest.mark.parametrize("words", NONSENSE)
def test_nonsense_is_no_good_match(library: Path, words: str) -> None:
    result = run("query", words, "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


def test_no_good_match_is_said_on_a_terminal_and_min_score_0_shows_the_closest(
    library: Path,
) -> None:
    screen = in_terminal("query", "asdfghjkl")
    assert "no good match: nothing scored 0.50 or more" in screen
    assert "--min-score 0" in screen
    assert len(query_json("asdfghjkl", "--min-score", "0")) == 10


def test_min_score_is_read_on_the_calibrated_scale(library: Path) -> None:
    scores = [h["score"] for h in query_json(caption(SCENES["stars"]), "--min-score", "0")]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert max(scores) >= 0.5 and min(scores) < 0.5
    kept = query_json(caption(SCENES["stars"]), "--min-score", "0.5")
    assert [h["score"] for h in kept] == [s for s in scores if s >= 0.5]


def test_unrelated_documents_added_move_a_pictures_score_little(
    library: Path, tmp_path: Path
) -> None:
    words = caption(SCENES["orange-square"])
    before = query_json(words)
    more = tmp_path / "more"
    documents(more, copies=12)  # 36 documents more, ~100 passages
    index(more)
    after = query_json(words)
    assert after[0]["path"] == before[0]["path"]
    assert abs(after[0]["score"] - before[0]["score"]) < 0.05
    assert [h["path"] for h in after if "pictures" in h["path"]][: len(before)] == [
        h["path"] for h in before if "pictures" in h["path"]
    ]


def test_nonsense_is_no_good_match_in_mcp(library: Path) -> None:
    from test_mcp import session

    _, (result,) = session([("search", {"query": "asdfghjkl"})])
    assert not result.is_error and result.structured_content["results"] == []
    assert result.structured_content["message"].startswith("no good match")
    assert "no good match" in " ".join(c.text for c in result.content if c.type == "text")


def test_nonsense_is_no_good_match_in_the_web_ui(
    library: Path, tmp_path: Path, scene_model: str, model_cache: Path
) -> None:
    from urllib.parse import quote

    from ui_app import TOKEN, running_ui

    (tmp_path / "ui").mkdir()
    with running_ui(tmp_path / "ui", library, scene_model, model_cache, min_score=None) as ui:
        status, _, body = ui.request(f"/?token={TOKEN}&q={quote('asdfghjkl')}")
        page = body.decode()
        assert status == 200 and "No good match: nothing scored 0.50 or more." in page
        assert 'id="results"' not in page
        found = ui.request(f"/?token={TOKEN}&q={quote(caption(SCENES['stars']))}")[2].decode()
        assert 'id="results"' in found and "stars.png" in found


def test_one_word_a_document_shares_with_a_description_does_not_win_it(tmp_path: Path) -> None:
    """The only passage holds "small" and none of the description's other words: the words
    no passage holds still count as missing, so the passage carries a sixth of the query
    and the described picture comes first."""
    folder = tmp_path / "library"
    pictures(folder)
    make_pdf(folder / "zoo.pdf", ["The small marsupial sleeps all day."])
    index(folder)
    hits = query_json(caption(SCENES["stars"]))
    assert hits[0]["path"] == str(folder / "pictures" / "stars.png")
    assert all(h["path"] != str(folder / "zoo.pdf") for h in hits)


def test_no_good_match_names_the_minimum_the_environment_sets(library: Path) -> None:
    screen = in_terminal("query", "asdfghjkl", env={"MMSEARCH_MIN_SCORE": "0.9"})
    assert "no good match: nothing scored 0.90 or more" in screen
