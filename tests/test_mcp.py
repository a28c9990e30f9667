"""The search as an agent uses it: a real MCP client (the `mcp` package) over Gradio's streamable HTTP endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from carmatch.runtime import Runtime


async def _session_call(url: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def mcp(url: str, *calls: tuple[str, dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(the tools listed, one CallToolResult per call), from one MCP session.

    The client runs in a thread of its own: Playwright's sync API may hold an event loop in this one.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _session_call(url, list(calls))).result(timeout=120)


def answer(result: Any) -> Any:
    """A successful call's JSON answer."""
    assert not result.isError, result.content
    return json.loads(result.content[0].text)


def error_line(result: Any) -> str:
    assert result.isError
    text = " ".join(part.text for part in result.content)
    assert "upstream" not in text.lower() and "\n" not in text.strip(), text
    return text


@pytest.fixture(scope="module")
def photo_b64(served: tuple[Runtime, str]) -> str:
    runtime = served[0]
    record = next(r for r in runtime.catalog.get_many(runtime.catalog.ids()).values() if "blue" in r.path)
    return base64.b64encode(Path(record.path).read_bytes()).decode()


def test_the_tools_say_what_they_do_and_no_admin_action_is_one(served: tuple[Runtime, str]) -> None:
    tools, _ = mcp(served[1])
    assert {tool.name for tool in tools} == {"search_cars", "car_filters"}
    search = next(tool for tool in tools if tool.name == "search_cars")
    assert "description" in search.description and "photo" in search.description
    properties = search.inputSchema["properties"]
    assert {"text", "image", "k", "weight", "color", "body_type", "make", "viewpoint"} <= set(properties)
    assert not search.inputSchema.get("required"), "every argument is optional: text alone must work"
    assert all(properties[name].get("description") for name in ("text", "image", "color"))


def test_a_text_only_search_answers(served: tuple[Runtime, str]) -> None:
    _, (result,) = mcp(served[1], ("search_cars", {"text": "a red sedan", "k": 3}))
    found = answer(result)
    assert len(found["results"]) == 3 and all("/" not in r["file"] for r in found["results"])
    assert {"id", "file", "score", "caption", "color"} <= set(found["results"][0])


def test_a_photo_as_base64_or_a_data_uri_and_a_blend_answer(served: tuple[Runtime, str], photo_b64: str) -> None:
    _, results = mcp(
        served[1],
        ("search_cars", {"image": photo_b64, "k": 2}),
        ("search_cars", {"image": f"data:image/png;base64,{photo_b64}", "k": 2}),
        ("search_cars", {"text": "a pickup", "image": photo_b64, "weight": 0.7, "k": 2}),
    )
    by_photo, by_uri, blended = (answer(r)["results"] for r in results)
    assert by_photo[0]["file"] == "blue_pickup.png" and by_uri == by_photo
    assert len(blended) == 2


def test_filters_take_the_collections_values_and_refuse_others_in_one_line(served: tuple[Runtime, str]) -> None:
    _, (filters, red, purple) = mcp(
        served[1],
        ("car_filters", {}),
        ("search_cars", {"text": "a car", "color": "red", "k": 5}),
        ("search_cars", {"text": "a car", "color": "purple"}),
    )
    values = answer(filters)
    assert values["color"]["red"] == 1 and values["body_type"]["van"] == 2
    assert [r["color"] for r in answer(red)["results"]] == ["red"]
    line = error_line(purple)
    assert "purple" in line and "red" in line


@pytest.mark.parametrize(
    "arguments,reason",
    [
        ({}, "description"),
        ({"text": "a car", "k": 500}, "200"),
        ({"image": "not an image!"}, "URL"),
        ({"image": "aGVsbG8="}, "image"),
        ({"image": "http://127.0.0.1/photo.jpg"}, "public address"),
        ({"image": "ftp://example.com/a.jpg"}, "base64"),
    ],
)
def test_bad_arguments_come_back_as_one_line_reasons(
    served: tuple[Runtime, str], arguments: dict[str, Any], reason: str
) -> None:
    _, (result,) = mcp(served[1], ("search_cars", arguments))
    assert reason in error_line(result)


def test_the_api_example_in_the_docs_works_as_written(served: tuple[Runtime, str]) -> None:
    from gradio_client import Client

    client = Client(served[1], verbose=False)
    filters = json.loads(client.predict(api_name="/car_filters"))
    answer = json.loads(client.predict(text="a blue pickup", k=3, color="blue", api_name="/search_cars"))
    assert "blue" in filters["color"]
    assert [r["file"] for r in answer["results"]] == ["blue_pickup.png"]
