"""Adapters on demand in the running service: the shared server's `adapter_store` is an S3 prefix on the local
S3 server, and its cache holds two of these adapters, not three (tests/conftest.py). Adapters are named in
requests without any registration, through the `adapter` field and the OpenAI `model` field alike."""

from __future__ import annotations

import concurrent.futures
import re
import tempfile
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from serving.paths import REPO_ROOT
from tests.conftest import ADAPTER_STORE_BUCKET, ServiceUnderTest
from viggo.prompt import build_messages

BUNDLED = REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2"
STORE = f"s3://{ADAPTER_STORE_BUCKET}/adapters"
# build_messages types its messages as plain dicts; validated, they are the openai SDK's typed chat messages.
MESSAGES = TypeAdapter(list[ChatCompletionMessageParam]).validate_python(
    build_messages("Dirt: Showdown is a 2012 racing game for PlayStation, Xbox and PC.")
)
PROMPT = {"messages": MESSAGES, "max_tokens": 24, "temperature": 0}
# name -> factor applied to every lora_B weight: 1 is the bundled adapter as is; others change its outputs.
ADAPTERS = {"store-a": 1.0, "store-b": -3.0, "store-c": 2.5, "store-race": 1.0}


@pytest.fixture(scope="module")
def store(server: ServiceUnderTest) -> str:
    """The adapters uploaded under the service's adapter_store (copies of the bundled one, some rescaled)."""
    import torch
    from safetensors.torch import load_file, save_file

    server.moto.start()
    client = server.moto.client()
    weights = load_file(BUNDLED / "adapter_model.safetensors")
    with tempfile.TemporaryDirectory() as work:
        for name, factor in ADAPTERS.items():
            scaled = {k: (v.float() * factor).to(v.dtype) if "lora_B" in k else v for k, v in weights.items()}
            some_b = next(k for k in weights if "lora_B" in k)
            assert torch.equal(scaled[some_b], weights[some_b]) == (factor == 1.0)
            path = Path(work) / f"{name}.safetensors"
            save_file(scaled, path, metadata={"format": "pt"})
            client.upload_file(str(path), ADAPTER_STORE_BUCKET, f"adapters/{name}/adapter_model.safetensors")
            client.upload_file(
                str(BUNDLED / "adapter_config.json"), ADAPTER_STORE_BUCKET, f"adapters/{name}/adapter_config.json"
            )
    return STORE


def generate(server: ServiceUnderTest, adapter: str | None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/generate", headers=server.headers, timeout=300, json={**PROMPT, "adapter": adapter}
    )


def loaded_models(server: ServiceUnderTest) -> set[str]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    return {model.id for model in client.models.list().data}


def test_store_adapters_load_by_name_on_first_use_and_the_least_recently_used_is_evicted(
    server: ServiceUnderTest, store: str
) -> None:
    base = generate(server, None).text
    first_a = generate(server, "store-a")
    assert first_a.status_code == 200, first_a.text
    first_b = generate(server, "store-b")
    assert first_b.status_code == 200, first_b.text
    assert first_a.text != base and first_b.text != base and first_a.text != first_b.text
    assert {"store-a", "store-b"} <= loaded_models(server)

    # store-a used again (now store-b is the least recently used); then store-c, first named through /v1.
    assert generate(server, "store-a").text == first_a.text
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    reply = client.chat.completions.create(model="store-c", messages=MESSAGES, max_tokens=24, temperature=0)
    assert reply.model == "store-c" and reply.choices[0].message.content
    assert generate(server, "store-c").text not in (base, first_a.text)

    listed = loaded_models(server)
    assert {"store-a", "store-c"} <= listed and "store-b" not in listed, listed
    assert "adapter 'store-b' evicted" in server.log()
    # Evicted is not forgotten: named again, it is fetched again (evicting the least recently used, store-a).
    again = generate(server, "store-b")
    assert again.status_code == 200 and again.text == first_b.text
    assert "store-b" in loaded_models(server) and "store-a" not in loaded_models(server)


def test_absent_adapter_is_a_404_naming_the_store(server: ServiceUnderTest, store: str) -> None:
    response = generate(server, "not-in-store")
    assert response.status_code == 404, response.text
    assert store in response.json()["error"]["message"] and response.json()["error"]["param"] == "adapter"

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    with pytest.raises(openai.NotFoundError) as absent:
        client.chat.completions.create(model="not-in-store", messages=MESSAGES, max_tokens=4)
    assert store in str(absent.value)


def test_racing_first_requests_share_one_download(server: ServiceUnderTest, store: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: generate(server, "store-race"), range(6)))
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    # One log line per download (the progress bar's lines say "downloading adapter ...:  63%|...").
    downloads = re.findall(rf"downloading adapter {re.escape(store)}/store-race: \d+ files", server.log())
    assert len(downloads) == 1, downloads
