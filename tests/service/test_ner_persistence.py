"""NER results in S3 through the running service, an S3 outage that loses nothing, and the LangChain
`with_structured_output` path over /v1 that users of hosted vLLM already write."""

from __future__ import annotations

import json
import time
from typing import Annotated

import httpx
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.conftest import ServiceUnderTest

TEXT = "Angela Merkel met Emmanuel Macron in Paris on 4 March 2019."


def extract(server: ServiceUnderTest, **body: object) -> dict:
    response = httpx.post(f"{server.url}/extract_entities", headers=server.headers, json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def stored(server: ServiceUnderTest, record_id: str) -> dict | None:
    s3 = server.moto.client()
    try:
        obj = s3.get_object(Bucket=server.results_bucket, Key=f"runs/{record_id}/named_entities.json")
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(obj["Body"].read())


def test_result_is_persisted_to_s3_under_its_id(server: ServiceUnderTest) -> None:
    server.moto.start()
    result = extract(server, text=TEXT, id="doc-persist-1", persist=True)
    assert result["meta"]["stored_at"] == f"s3://{server.results_bucket}/runs/doc-persist-1/named_entities.json"
    assert result["meta"]["upload_pending"] is False
    saved = stored(server, "doc-persist-1")
    assert saved is not None and saved["text"] == TEXT
    assert saved["persons"] == result["persons"] and saved["spans"] == result["spans"]


def test_text_sample_shape_and_no_persist(server: ServiceUnderTest) -> None:
    result = extract(server, id="doc-body-1", body=TEXT, persist=False)
    assert result["id"] == "doc-body-1" and result["meta"]["stored_at"] is None
    assert stored(server, "doc-body-1") is None


def test_an_s3_outage_loses_no_result(server: ServiceUnderTest) -> None:
    server.moto.start()
    server.moto.stop()
    ids = [f"outage-{i}" for i in range(3)]
    try:
        for record_id in ids:
            result = extract(server, text=TEXT, id=record_id, persist=True)
            assert result["meta"]["upload_pending"] is True, "S3 is down: the result must wait in the spool"
            assert result["persons"] or result["locations"]
    finally:
        server.moto.start()  # re-creates the (empty) results bucket
    deadline = time.monotonic() + 120
    while any(stored(server, record_id) is None for record_id in ids):
        assert time.monotonic() < deadline, "spooled results were not uploaded after S3 came back"
        time.sleep(2)
    for record_id in ids:
        record = stored(server, record_id)
        assert record is not None and record["id"] == record_id


Name = Annotated[str, Field(max_length=40)]


class FewEntities(BaseModel):
    """Entities with bounded lists and names: vLLM enforces the bounds, so the 135M model's answer always ends
    within max_tokens (with unbounded lists it once looped past 200 tokens, and LangChain rightly refused it)."""

    persons: list[Name] = Field(max_length=4)
    organizations: list[Name] = Field(max_length=4)
    locations: list[Name] = Field(max_length=4)
    dates: list[Name] = Field(max_length=4)


def test_langchain_chat_openai_structured_output(server: ServiceUnderTest) -> None:
    model = httpx.get(f"{server.url}/v1/models", headers=server.headers, timeout=30).json()["data"][0]["id"]
    llm = ChatOpenAI(base_url=f"{server.url}/v1", model=model, api_key=server.api_key, temperature=0, max_tokens=800)
    structured = llm.with_structured_output(FewEntities, method="json_schema")
    entities = structured.invoke(f"Extract the persons, organizations, locations and dates from: {TEXT}")
    assert isinstance(entities, FewEntities)
