"""`mmsearch mcp` as an agent meets it: spawned over stdio and spoken to by the official MCP
SDK's own client. Tools search, similar, picture and status (read-only, titled, with input and
output schemas); the status as a resource; results as structured JSON plus labelled
thumbnails; bad input is a tool error in the schema's words, and the server stays up."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import make_pdf, make_video, run
from PIL import Image

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


@pytest.fixture
def library(photos: Path) -> Path:
    (photos / "copies").mkdir()
    shutil.copy(photos / "astronaut.png", photos / "copies" / "astronaut-copy.png")
    make_video(photos / "clips" / "patterns.mp4")
    assert run("index", "-q", str(photos)).exit_code == 0
    return photos


def session(
    calls: list[tuple[str, dict[str, Any]]], read: tuple[str, ...] = ()
) -> tuple[list[Any], list[Any]]:
    """Spawn `python -m mmsearch mcp`, list its tools, make the calls (then read the
    resources named in `read`, their contents after the calls' results) in one session."""
    names = ("MMSEARCH_", "XDG_", "HF_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k.startswith(names)}
    server = StdioServerParameters(command=sys.executable, args=["-m", "mmsearch", "mcp"], env=env)

    async def talk() -> tuple[list[Any], list[Any]]:
        async with stdio_client(server) as (r, w), ClientSession(r, w) as client:
            await client.initialize()
            tools = (await client.list_tools()).tools
            results = [await client.call_tool(name, args) for name, args in calls]
            results += [(await client.read_resource(uri)).contents for uri in read]
            return tools, results

    return asyncio.run(asyncio.wait_for(talk(), 300))


def test_it_offers_search_similar_picture_and_status(library: Path) -> None:
    tools, _ = session([])
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search", "similar", "picture", "status"}
    search = by_name["search"].input_schema["properties"]
    assert {"query", "top", "kind", "folder", "ext", "after", "before", "mode"} <= set(search)
    assert {"sort", "min_score", "moments"} <= set(search)
    assert {"path", "moment", "top"} <= set(by_name["similar"].input_schema["properties"])
    assert {"path", "page", "moment", "size"} <= set(by_name["picture"].input_schema["properties"])


def test_every_tool_is_titled_read_only_and_refuses_unknown_arguments(library: Path) -> None:
    tools, _ = session([])
    for tool in tools:
        assert tool.title and tool.description, tool.name
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.destructive_hint is False, tool.name
        assert tool.input_schema["additionalProperties"] is False, tool.name


def test_every_search_argument_is_described_and_choices_are_enums(library: Path) -> None:
    tools, _ = session([])
    search = next(t for t in tools if t.name == "search").input_schema
    defs = search["$defs"]

    def enum(prop: dict[str, Any]) -> list[str]:
        ref = json.dumps(prop).split('"$ref": "#/$defs/')[1].split('"')[0]
        return defs[ref]["enum"]

    props = search["properties"]
    assert all(p.get("description") for p in props.values()), props
    assert enum(props["mode"]) == ["auto", "vector", "text", "hybrid"]
    assert enum(props["sort"]) == ["score", "date", "-date"]
    assert enum(props["kind"]) == ["image", "video", "document"]
    assert props["top"]["minimum"] == 1 and props["top"]["maximum"] == 100


def test_search_and_similar_publish_the_schema_of_their_results(library: Path) -> None:
    tools, _ = session([])
    for tool in tools:
        if tool.name in ("search", "similar"):
            schema = tool.output_schema
            assert set(schema["properties"]) == {"results", "message"}, tool.name
            result = schema["$defs"]["Result"]["properties"]
            assert {"n", "path", "kind", "score", "moment", "page", "snippet", "taken"} <= set(
                result
            )


def test_search_answers_structured_results_and_thumbnails(library: Path) -> None:
    query = str(library / "astronaut.png")
    _, [result] = session([("search", {"query": query, "top": 8})])
    assert not result.is_error
    found = result.structured_content["results"]
    assert found[0]["path"] == str(library / "copies" / "astronaut-copy.png")
    assert len(found) == 8 and query not in [r["path"] for r in found]
    assert set(found[0]) >= {"n", "path", "kind", "score", "moment", "page", "snippet", "taken"}
    assert json.loads(result.content[0].text) == found  # the same, for clients that only read
    pictures = [c for c in result.content if c.type == "image"]
    assert 1 <= len(pictures) <= 6 and pictures[0].mime_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(base64.b64decode(pictures[0].data))).size) <= 160


def test_search_filters_by_kind_and_names_the_moment(library: Path) -> None:
    _, [result] = session([("search", {"query": "test pattern", "kind": ["video"]})])
    [video] = result.structured_content["results"]
    assert video["path"] == str(library / "clips" / "patterns.mp4")
    assert video["kind"] == "video" and isinstance(video["moment"], float)


def test_similar_finds_the_copy_and_never_the_file_itself(library: Path) -> None:
    path = str(library / "copies" / "astronaut-copy.png")
    _, [result] = session([("similar", {"path": path, "top": 3})])
    found = [r["path"] for r in result.structured_content["results"]]
    assert found[0] == str(library / "astronaut.png") and path not in found


def test_status_reports_what_is_indexed(library: Path) -> None:
    _, [result] = session([("status", {})])
    report = result.structured_content
    assert report["indexed"] and report["files_by_kind"]["video"] == 1
    assert report["files_indexed"] == len([p for p in library.rglob("*") if p.is_file()])


def test_bad_input_is_a_tool_error_and_the_server_goes_on(library: Path) -> None:
    calls = [
        ("search", {"query": "x", "mode": "fuzzy"}),
        ("similar", {"path": str(library / "no-such.jpg")}),
        ("search", {"query": "x", "after": "someday"}),
        ("search", {"query": "x", "top": 2}),
    ]
    _, [mode, missing, date, fine] = session(calls)
    assert mode.is_error and mode.content[0].text == (
        "mode must be one of 'auto', 'vector', 'text' or 'hybrid', not 'fuzzy'"
    )
    assert missing.is_error and "no-such.jpg" in missing.content[0].text
    assert date.is_error and "someday" in date.content[0].text
    assert not fine.is_error and len(fine.structured_content["results"]) == 2


def test_with_the_trained_model_a_description_finds_its_picture(
    with_scene_model: str, tmp_path: Path
) -> None:
    from scene_model.scenes import Scene, Thing, caption, render

    scenes = {
        "red-circle": Scene("white", things=(Thing("circle", "red"),), size="large"),
        "yellow-stars": Scene("black", things=(Thing("star", "yellow"),), count=3),
        "blue-square": Scene("yellow", things=(Thing("square", "blue"),), size="large"),
        "pizza": Scene("white", words="pizza"),
    }
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name, scene in scenes.items():
        render(scene).save(folder / f"{name}.png")
    assert run("index", "-q", str(folder)).exit_code == 0
    calls = [("search", {"query": caption(scene), "top": 1}) for scene in scenes.values()]
    _, results = session(calls)
    firsts = [Path(r.structured_content["results"][0]["path"]).stem for r in results]
    assert firsts == list(scenes)


def test_the_folder_argument_keeps_every_result_inside_that_folder(library: Path) -> None:
    """An agent told to look in one folder must get that folder's files only, from search
    and from similar alike, and all of them when `top` allows: not the best of everywhere."""
    trips = library / "trips"
    inside = sorted(str(p) for p in trips.rglob("*") if p.is_file())
    assert len(inside) == 3 and len(list(library.rglob("*.*"))) > 6  # most files lie outside
    calls = [
        ("search", {"query": "a photo", "top": 50, "folder": [str(trips)]}),
        ("similar", {"path": str(library / "astronaut.png"), "top": 50, "folder": [str(trips)]}),
    ]
    _, results = session(calls)
    for (tool, _), result in zip(calls, results, strict=True):
        assert not result.is_error, (tool, result.content)
        found = sorted(r["path"] for r in result.structured_content["results"])
        assert found == inside, tool


def test_each_of_the_first_six_results_comes_with_its_own_160_pixel_thumbnail(
    library: Path,
) -> None:
    """Docs: results come with a 160-pixel JPEG thumbnail of each of the first six results,
    so an agent can look as well as read. Eight pictures found: six thumbnails, each of the
    long side promised and each showing its own result, in the results' order."""
    import numpy as np

    def look(image: Image.Image) -> np.ndarray:
        """A tiny grey view of a picture, transparency laid on white as thumbnails do."""
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, "white")
        grey = Image.alpha_composite(white, image).convert("L").resize((16, 16))
        return np.asarray(grey, dtype=np.float32)

    _, [result] = session([("search", {"query": "a photo", "top": 8, "kind": ["image"]})])
    found = [r["path"] for r in result.structured_content["results"]]
    thumbs = [
        Image.open(io.BytesIO(base64.b64decode(c.data)))
        for c in result.content
        if c.type == "image"
    ]
    assert len(found) == 8 and len(thumbs) == 6
    assert [max(t.size) for t in thumbs] == [160] * 6
    originals = [look(Image.open(path)) for path in found]
    for i, thumb in enumerate(thumbs):
        distances = [float(np.abs(look(thumb) - o).mean()) for o in originals]
        assert distances[i] == min(distances), (i, found[i], distances)


def test_a_picture_outside_the_library_gets_one_answer_whether_anything_is_there(
    library: Path, tmp_path: Path
) -> None:
    (tmp_path / "real.png").write_bytes((library / "astronaut.png").read_bytes())
    outside = ["/etc/shadow", "/etc/passwd", "/etc/no-such-file", str(tmp_path / "real.png")]
    calls = [("search", {"query": p}) for p in outside]
    calls += [("similar", {"path": p}) for p in outside]
    _, results = session(calls)
    said = set()
    for (_, args), result in zip(calls, results, strict=True):
        path = args.get("query") or args["path"]
        assert result.is_error, (path, result)
        said.add(result.content[0].text.replace(path, "PATH"))
    assert said == {
        "PATH: not a picture of the library (only files inside the indexed folders can be "
        "searched by here)"
    }


def test_a_huge_argument_is_a_tool_error_and_the_server_goes_on(library: Path) -> None:
    many = [f"/p/{i}" for i in range(100_000)]
    calls = [
        ("search", {"query": "x", "folder": many}),
        ("similar", {"path": str(library / "astronaut.png"), "plus": ["x"] * 100_000}),
        ("search", {"query": "x" * 100_000}),
        ("search", {"query": " + ".join(["x"] * 100)}),
        ("similar", {"path": str(library / "astronaut.png"), "moment": 1e300}),
        ("search", {"query": "x", "top": 2}),
    ]
    _, [folders, plus, long, parts, moment, fine] = session(calls)
    assert folders.is_error and folders.content[0].text == (
        "folder: at most 256 folders, not 100000"
    )
    assert plus.is_error and plus.content[0].text == "plus: at most 64 texts, not 100000"
    assert long.is_error and "query is too long" in long.content[0].text
    assert parts.is_error and "at most 64 parts" in parts.content[0].text
    assert moment.is_error and "moment must be" in moment.content[0].text
    assert not fine.is_error and len(fine.structured_content["results"]) == 2


def test_every_picture_follows_the_label_of_its_result(library: Path) -> None:
    """A text document among the results has no picture: the pictures after it must still
    say which result they show (the one before it labelled 1, not 2)."""
    (library / "notes.txt").write_text("a photo of a cat, and notes about photos\n")
    assert run("index", "-q", str(library)).exit_code == 0
    args = {"query": "a photo", "top": 6, "ext": ["txt", "png"]}
    _, [result] = session([("search", args)])
    found = result.structured_content["results"]
    assert "document" in [r["kind"] for r in found] and len(found) <= 6
    blocks = result.content[1:]
    pictures = [i for i, b in enumerate(blocks) if b.type == "image"]
    assert len(pictures) == len([r for r in found if r["kind"] != "document"])
    for i in pictures:
        n = int(blocks[i - 1].text.split(":")[0].removeprefix("result "))
        assert found[n - 1]["kind"] == "image"
        assert blocks[i - 1].text == f"result {n}: {found[n - 1]['path']}"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({"query": "x", "top": 0}, "top must be 1 to 100, not 0"),
        ({"query": "x", "top": -5}, "top must be 1 to 100, not -5"),
        ({"query": "x", "top": 1000000}, "top must be 1 to 100, not 1000000"),
        ({"query": "x", "kinds": ["video"]}, "unknown argument 'kinds': the arguments are "),
        ({"query": ""}, "query is empty: give words, or a picture's absolute path"),
        ({"query": "x", "min_score": 2}, "min_score must be 0 to 1, not 2"),
        ({"top": 3}, "query is required"),
        ({"query": "x", "kind": ["photo"]}, "kind.0 must be one of 'image', 'video' or "),
    ],
)
def test_a_bad_search_argument_is_refused_in_one_line_of_the_schemas_words(
    library: Path, args: dict[str, Any], said: str
) -> None:
    _, [result] = session([("search", args)])
    text = result.content[0].text
    assert result.is_error and text.startswith(said) and "\n" not in text
    assert "pydantic" not in text and "http" not in text and "--" not in text


def test_similar_to_a_video_without_a_moment_names_the_argument(library: Path) -> None:
    clip = str(library / "clips" / "patterns.mp4")
    _, [result] = session([("similar", {"path": clip})])
    assert result.is_error and "give moment (seconds)" in result.content[0].text
    assert "--at" not in result.content[0].text


def test_sort_by_date_orders_the_results_by_capture_date(library: Path) -> None:
    calls = [("search", {"query": "a photo", "top": 5, "sort": s}) for s in ("date", "-date")]
    _, [oldest, newest] = session(calls)
    old = [r["taken"] for r in oldest.structured_content["results"]]
    new = [r["taken"] for r in newest.structured_content["results"]]
    assert None not in old and old == sorted(old) and new == sorted(new, reverse=True)


def test_no_good_match_is_an_empty_result_with_a_sentence(library: Path) -> None:
    _, [result] = session([("search", {"query": "a photo", "min_score": 1})])
    assert not result.is_error and result.structured_content["results"] == []
    assert result.structured_content["message"].startswith("no good match")
    assert "min_score 0" in result.content[1].text


def test_picture_shows_a_result_at_the_size_asked(library: Path) -> None:
    _, [result] = session([("picture", {"path": str(library / "astronaut.png"), "size": 300})])
    [label, image] = result.content
    assert label.text == str(library / "astronaut.png")
    assert max(Image.open(io.BytesIO(base64.b64decode(image.data))).size) == 300


def test_picture_shows_the_page_of_a_pdf_asked_for(library: Path) -> None:
    make_pdf(
        library / "two.pdf", ["first page", "second page"], images={2: library / "astronaut.png"}
    )
    assert run("index", "-q", str(library)).exit_code == 0
    pdf = str(library / "two.pdf")
    calls = [("picture", {"path": pdf, "page": p, "size": 200}) for p in (1, 2, 3)]
    _, [one, two, three] = session(calls)

    def ink(result: Any) -> float:
        picture = Image.open(io.BytesIO(base64.b64decode(result.content[1].data))).convert("L")
        return 255 - sum(picture.getdata()) / (picture.width * picture.height)

    assert two.content[0].text == f"{pdf} page 2" and ink(two) > 5 * ink(one)
    assert three.is_error and "no picture of two.pdf" in three.content[0].text


def test_picture_shows_the_frame_of_a_video_at_the_moment_asked(library: Path) -> None:
    clip = str(library / "clips" / "patterns.mp4")
    calls = [("picture", {"path": clip, "moment": t, "size": 64}) for t in (2.0, 6.0)]
    _, [early, late] = session(calls)
    assert early.content[0].text == f"{clip} at 2 s"
    assert early.content[1].data != late.content[1].data


def test_picture_refuses_a_file_outside_the_library(library: Path, tmp_path: Path) -> None:
    (tmp_path / "real.png").write_bytes((library / "astronaut.png").read_bytes())
    _, [result] = session([("picture", {"path": str(tmp_path / "real.png")})])
    assert result.is_error and "no longer a file of the library" in result.content[0].text


def test_the_status_is_also_a_resource(library: Path) -> None:
    _, [contents] = session([], read=("mmsearch://status",))
    report = json.loads(contents[0].text)
    assert contents[0].mime_type == "application/json"
    assert report["indexed"] and report["files_by_kind"]["video"] == 1
