"""`mmsearch mcp` as an agent meets it: spawned over stdio and spoken to by the official MCP
SDK's own client. Tools search, similar and status; results as structured JSON plus small
thumbnails as image content; bad input is a tool error, and the server stays up."""

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
from helpers import make_video, run
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


def session(calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    """Spawn `python -m mmsearch mcp`, list its tools, make the calls in one session."""
    names = ("MMSEARCH_", "XDG_", "HF_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k.startswith(names)}
    server = StdioServerParameters(command=sys.executable, args=["-m", "mmsearch", "mcp"], env=env)

    async def talk() -> tuple[list[Any], list[Any]]:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = (await client.list_tools()).tools
            results = [await client.call_tool(name, args) for name, args in calls]
            return tools, results

    return asyncio.run(asyncio.wait_for(talk(), 300))


def test_it_offers_search_similar_and_status(library: Path) -> None:
    tools, _ = session([])
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search", "similar", "status"}
    search = by_name["search"].input_schema["properties"]
    assert {"query", "top", "kind", "folder", "ext", "after", "before", "mode"} <= set(search)
    assert {"path", "moment", "top"} <= set(by_name["similar"].input_schema["properties"])


def test_search_answers_structured_results_and_thumbnails(library: Path) -> None:
    query = str(library / "astronaut.png")
    _, [result] = session([("search", {"query": query, "top": 8})])
    assert not result.is_error
    found = result.structured_content["results"]
    assert found[0]["path"] == str(library / "copies" / "astronaut-copy.png")
    assert len(found) == 8 and query not in [r["path"] for r in found]
    assert set(found[0]) >= {"path", "kind", "score", "moment", "page", "snippet"}
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
    assert mode.is_error and "auto, vector, text, hybrid" in mode.content[0].text
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
