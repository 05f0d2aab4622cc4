"""NER through the running service; `server` (base URL in `server.url`) is the lead's session fixture.

Shapes are those of ner/protocol.py: a batch answers a list of `{index, id, result, error}`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ner.client import EntityExtractionClient, ExtractionInput, ExtractionResponse
from ner.schema import Entities, EntitySpan
from serving.paths import NER_DEV_SET

pytestmark = pytest.mark.engine

DEV = NER_DEV_SET
SENTENCE = "Tim Cook said Apple will open a new campus in Austin on 4 March 2019."


def _headers(server: Any) -> dict[str, str]:
    key = getattr(server, "api_key", None)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(server: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=_headers(server), timeout=300)


def _assert_valid(text: str, body: dict[str, Any]) -> None:
    Entities.model_validate({name: body[name] for name in ("persons", "organizations", "locations", "dates")})
    for raw in body["spans"]:
        span = EntitySpan.model_validate(raw)
        assert text[span.start : span.end] == span.text
    assert isinstance(body["meta"]["dropped"], int)


def test_extraction_is_schema_valid_and_grounded(server: Any) -> None:
    response = _post(server, "/extract_entities", {"text": SENTENCE, "persist": False})
    assert response.status_code == 200, response.text
    body = response.json()
    _assert_valid(SENTENCE, body)
    assert "4 March 2019" in body["dates"]
    every = [e for name in ("persons", "organizations", "locations", "dates") for e in body[name]]
    assert all(entity in SENTENCE for entity in every)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_a_client_error_naming_text(server: Any, text: str) -> None:
    response = _post(server, "/extract_entities", {"text": text, "persist": False})
    assert 400 <= response.status_code < 500
    assert "text" in response.text


def test_batch_keeps_order_and_isolates_a_bad_item(server: Any) -> None:
    texts = ["Angela Merkel visited Erlangen.", "", "Samsung showed televisions in Las Vegas in January 2025."]
    response = _post(server, "/extract_entities_batch", {"items": [{"text": t} for t in texts], "persist": False})
    assert response.status_code == 200, response.text
    items = response.json()
    assert [item["index"] for item in items] == [0, 1, 2]
    assert items[1]["result"] is None and "text" in items[1]["error"]["param"]
    assert 400 <= items[1]["error"]["code"] < 500
    for text, item in ((texts[0], items[0]), (texts[2], items[2])):
        assert item["error"] is None, item
        _assert_valid(text, item["result"])
    first = items[0]["result"]
    assert "Erlangen" in first["locations"] + first["organizations"] + first["persons"]
    assert items[2]["result"]["dates"] == ["January 2025"]


def test_eval_cli_against_the_service(server: Any, tmp_path: Path) -> None:
    if not DEV.exists():
        pytest.skip(f"no dev set at {DEV}")
    env = {**os.environ, "API_KEY": getattr(server, "api_key", None) or ""}
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "ner.evaluate", "--data", str(DEV), "--url", server.url, "--json-out", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "micro-F1:" in done.stdout
    assert "schema-valid: 100.0%" in done.stdout
    assert out.exists()


def test_runnable_client_invoke_batch_and_async(server: Any) -> None:
    client = EntityExtractionClient(server.url, api_key=getattr(server, "api_key", None))
    single = client.invoke(SENTENCE)
    assert isinstance(single, dict)
    _assert_valid(SENTENCE, single)

    texts: list[ExtractionInput] = [
        "Ada Lovelace worked in London.",
        {"text": "Toyota and Panasonic met in Osaka in 2020."},
    ]
    batch = client.batch(texts)
    # The isinstance filter narrows for mypy; an answer that is not a dict would shorten the list and fail.
    assert [r["dates"] for r in batch if isinstance(r, dict)] == [[], ["2020"]]

    typed = EntityExtractionClient(server.url, api_key=getattr(server, "api_key", None), as_model=True)
    results = asyncio.run(typed.abatch(["Shell moved to London in January 2022.", SENTENCE]))
    responses = [r for r in results if isinstance(r, ExtractionResponse)]
    assert len(responses) == len(results)
    assert responses[0].dates == ["January 2022"]
    one = asyncio.run(typed.ainvoke(SENTENCE))
    assert isinstance(one, ExtractionResponse) and one.dates == ["4 March 2019"]
