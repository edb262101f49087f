"""`mmsearch query`: result formats, limits, filters and the output contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_image, query_json, run


@pytest.fixture
def indexed(photos: Path) -> Path:
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


def test_query_json_gives_documented_fields(indexed: Path) -> None:
    results = query_json("a cat on a sofa")
    assert results
    for r in results:
        assert set(r) == {"path", "kind", "score", "t", "t_end", "page", "snippet", "taken"}
        assert Path(r["path"]).is_absolute() and Path(r["path"]).exists()
        assert (r["kind"], r["t"], r["t_end"], r["page"]) == ("image", None, None, None)
        assert isinstance(r["score"], float)


def test_query_results_are_best_first(indexed: Path) -> None:
    scores = [r["score"] for r in query_json("rocket launch")]
    assert scores == sorted(scores, reverse=True)


def test_query_top_limits_results(indexed: Path) -> None:
    assert len(query_json("x", "-n", "3")) == 3
    assert len(query_json("x", "--top", "100")) == 7


def test_query_lists_each_file_once(indexed: Path) -> None:
    paths = [r["path"] for r in query_json("x", "-n", "100")]
    assert len(paths) == len(set(paths))


def test_query_jsonl_is_one_object_per_line(indexed: Path) -> None:
    out = run("query", "x", "--jsonl", "-n", "4").stdout
    lines = out.splitlines()
    assert len(lines) == 4
    assert [json.loads(line)["path"] for line in lines] == [
        r["path"] for r in query_json("x", "-n", "4")
    ]


def test_query_paths_prints_one_path_per_line(indexed: Path) -> None:
    out = run("query", "x", "--paths", "-n", "2").stdout
    assert out.splitlines() == [r["path"] for r in query_json("x", "-n", "2")]


def test_query_null_separates_paths_with_nul(indexed: Path) -> None:
    out = run("query", "x", "-0", "-n", "2").stdout
    assert out.split("\0") == [*(r["path"] for r in query_json("x", "-n", "2")), ""]


def test_query_plain_output_when_stdout_is_not_a_terminal(indexed: Path) -> None:
    lines = run("query", "x", "-n", "2").stdout.splitlines()
    expected = query_json("x", "-n", "2")
    assert lines == [f"{r['score']:.4f}\t{r['path']}" for r in expected]


def test_query_in_restricts_results_to_a_subtree(indexed: Path) -> None:
    make_image(indexed / "trips2" / "sibling.png", seed=4)  # shares the prefix "trips"
    run("index", "-q", str(indexed))
    results = query_json("x", "-n", "100", "--in", str(indexed / "trips"))
    assert len(results) == 3
    assert all(r["path"].startswith(str(indexed / "trips") + "/") for r in results)


def test_query_in_accepts_several_paths(indexed: Path) -> None:
    results = query_json(
        "x", "-n", "100", "--in", str(indexed / "trips"), "--in", str(indexed / "chelsea.jpg")
    )
    assert len(results) == 4


def test_query_min_score_drops_weaker_results(indexed: Path) -> None:
    scores = [r["score"] for r in query_json("x", "-n", "100")]
    cut = scores[2]
    kept = query_json("x", "-n", "100", "--min-score", str(cut))
    assert [r["score"] for r in kept] == [s for s in scores if s >= cut]


def test_query_with_two_output_formats_is_a_usage_error(indexed: Path) -> None:
    result = run("query", "x", "--json", "--paths")
    assert result.exit_code == 2
    assert "choose one output format" in result.stderr


def test_query_before_any_index_says_what_to_do() -> None:
    result = run("query", "x")
    assert result.exit_code == 1
    assert result.stderr.startswith("mmsearch: error: nothing indexed")
    assert "mmsearch index" in result.stderr
    assert "Traceback" not in result.stderr


def test_query_results_in_a_table_on_a_terminal(indexed: Path, monkeypatch) -> None:
    import io

    from mmsearch.doors.render import hits
    from mmsearch.query.ranking import Hit

    out = io.StringIO()
    hits([Hit("/photos/[draft] beach.jpg", "image", 0.3141)], "table", out)
    text = out.getvalue()
    assert "[draft] beach.jpg" in text and "0.314" in text and "image" in text


def test_every_argument_is_bounded_in_the_commands_words(photos: Path) -> None:
    assert run("index", "-q", str(photos)).exit_code == 0
    many = [w for i in range(300) for w in ("--in", f"/p/{i}")]
    for args, said in (
        (["query", "x", *many], "--in: at most 256 folders, not 300"),
        (["query", " + ".join(["x"] * 65)], "a query has at most 64 parts, not 65"),
        (["query", "x" * 5000], "a query part is too long (5000 characters; at most 4096)"),
        (["query", "x", "-n", "10001"], "10001 is not in the range"),
    ):
        result = run(*args)
        assert result.exit_code == 2 and said in result.stderr, (args[:3], result.stderr)
        assert "Traceback" not in result.stderr
