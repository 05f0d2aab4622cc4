"""LoRA adapters in the running service: a freshly fine-tuned adapter loaded from disk and from S3,
selected per request (own endpoints and the OpenAI `model` field), and every refusal with its reason."""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from finetune.config import load_config
from finetune.train import train
from serving.paths import REPO_ROOT, VIGGO_DATA
from tests.conftest import ServiceUnderTest
from viggo.dataset import load_examples
from viggo.prompt import build_messages

BUNDLED = REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2"
# The prompt the adapter was trained on (no few-shot examples): where a few steps show first. build_messages
# types its messages as plain dicts; validated, they are the openai SDK's typed chat messages (same dicts).
MESSAGES = TypeAdapter(list[ChatCompletionMessageParam]).validate_python(
    build_messages("Dirt: Showdown is a 2012 racing game for PlayStation, Xbox and PC.")
)
PROMPT = {"messages": MESSAGES, "max_tokens": 32, "temperature": 0}


@pytest.fixture(scope="module")
def adapter_dir(server: ServiceUnderTest) -> Path:
    """A few CPU fine-tuning steps (finetune/configs/ci-tiny.yaml) into a folder the service may load from."""
    # A large learning rate so three steps visibly move greedy decoding away from the base model.
    config = load_config(
        REPO_ROOT / "finetune" / "configs" / "ci-tiny.yaml",
        output_dir=server.adapter_root / "ci-run",
        learning_rate=5e-3,
    )
    return train(config)


def register(server: ServiceUnderTest, name: str, source: str | Path) -> httpx.Response:
    return httpx.post(
        f"{server.url}/admin/adapters",
        headers=server.headers,
        timeout=120,
        json={"adapter": {"name": name, "source": str(source)}},
    )


def generate(server: ServiceUnderTest, adapter: str | None = None) -> str:
    response = httpx.post(
        f"{server.url}/generate", headers=server.headers, timeout=120, json={**PROMPT, "adapter": adapter}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_finetuned_adapter_from_disk_is_served_and_changes_outputs(server: ServiceUnderTest, adapter_dir: Path) -> None:
    response = register(server, "viggo-ci", adapter_dir)
    assert response.status_code == 200, response.text
    assert response.json()["rank"] == 8
    assert generate(server, "viggo-ci") != generate(server)

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    assert "viggo-ci" in {m.id for m in client.models.list().data}
    reply = client.chat.completions.create(model="viggo-ci", messages=MESSAGES, max_tokens=24, temperature=0)
    assert reply.model == "viggo-ci" and reply.choices[0].message.content

    listed = httpx.post(f"{server.url}/admin/adapters/list", headers=server.headers, json={}, timeout=30).json()
    assert "viggo-ci" in {a["name"] for a in listed}


def test_viggo_endpoint_with_adapter_returns_a_well_formed_mr(server: ServiceUnderTest, adapter_dir: Path) -> None:
    assert register(server, "viggo-ci", adapter_dir).status_code == 200
    response = httpx.post(
        f"{server.url}/viggo",
        headers=server.headers,
        timeout=120,
        json={"sentence": "Diablo II is a great game from Blizzard North.", "adapter": "viggo-ci"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["mr"].startswith(response.json()["act"] + "(")


def test_adapter_from_s3_is_downloaded_verified_and_served(server: ServiceUnderTest, adapter_dir: Path) -> None:
    server.moto.start()
    bucket = server.moto.create_bucket("adapters")
    s3 = server.moto.client()
    for file in adapter_dir.iterdir():
        if file.is_file():
            s3.upload_file(str(file), bucket, f"viggo/v1/{file.name}")
    response = register(server, "viggo-s3", f"s3://{bucket}/viggo/v1")
    assert response.status_code == 200, response.text
    assert generate(server, "viggo-s3") == generate(server, "viggo-ci")


def test_racing_registrations_of_one_adapter_download_it_once(server: ServiceUnderTest) -> None:
    server.moto.start()
    bucket = server.moto.create_bucket("adapter-race")
    client = server.moto.client()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        client.upload_file(str(BUNDLED / name), bucket, f"viggo/{name}")
    source = f"s3://{bucket}/viggo"
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: register(server, "viggo-raced", source), range(5)))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    # One log line per download (the progress bar's lines say "downloading adapter ...:  63%|...").
    assert len(re.findall(rf"downloading adapter {re.escape(source)}: \d+ files", server.log())) == 1


def _broken_copy(adapter_dir: Path, root: Path, name: str) -> Path:
    target = root / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(adapter_dir, target)
    return target


def _edit_config(folder: Path, **changes: object) -> None:
    config_file = folder / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **changes}))


def test_adapter_refusals_name_the_reason(server: ServiceUnderTest, adapter_dir: Path, tmp_path: Path) -> None:
    root = server.adapter_root
    too_big = _broken_copy(adapter_dir, root, "rank-64")
    _edit_config(too_big, r=64)
    other_base = _broken_copy(adapter_dir, root, "other-base")
    _edit_config(other_base, base_model_name_or_path="meta-llama/Llama-3.1-8B-Instruct")
    pickled = _broken_copy(adapter_dir, root, "bin-weights")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    outside = _broken_copy(adapter_dir, tmp_path, "outside")

    cases: list[tuple[str, str | Path, int, str]] = [
        ("rank", too_big, 422, "max_lora_rank"),
        ("base", other_base, 422, "base model"),
        ("bin", pickled, 422, "safetensors"),
        ("outside", outside, 403, "adapter_roots"),
        ("missing", root / "no-such-folder", 404, "does not exist"),
        ("s3-missing", "s3://adapters/nothing/here", 404, "no objects"),
        ("bad/name", adapter_dir, 422, "name"),
    ]
    for name, source, status, needle in cases:
        response = register(server, name, source)
        assert response.status_code == status, (name, response.text)
        assert needle in response.text, (name, response.text)

    unknown = httpx.post(
        f"{server.url}/viggo", headers=server.headers, json={"sentence": "Hi.", "adapter": "nope"}, timeout=30
    )
    assert unknown.status_code == 404 and "adapter" in unknown.text


def test_bundled_viggo_adapter_is_registered_at_start_and_is_viggos_default(server: ServiceUnderTest) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    assert "viggo" in {m.id for m in client.models.list().data}
    examples = load_examples(VIGGO_DATA, "valid")[:6]
    exact = 0
    for example in examples:
        response = httpx.post(
            f"{server.url}/viggo", headers=server.headers, json={"sentence": example.sentence}, timeout=120
        )
        assert response.status_code == 200, response.text
        exact += response.json()["mr"] == example.mr
    assert exact >= 4, f"the tuned adapter should get most of these right, got {exact}/6"


def test_bundled_ner_adapter_is_registered_at_start_and_labels_by_default(server: ServiceUnderTest) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key)
    assert "ner" in {m.id for m in client.models.list().data}
    text = "Angela Merkel met Tim Cook of Apple in Berlin on 4 March 2019."
    expected = {
        "persons": ["Angela Merkel", "Tim Cook"],
        "organizations": ["Apple"],
        "locations": ["Berlin"],
        "dates": ["4 March 2019"],
    }
    for adapter in (None, "ner"):
        body = {"text": text, "persist": False} | ({"adapter": adapter} if adapter else {})
        response = httpx.post(f"{server.url}/extract_entities", headers=server.headers, json=body, timeout=120)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["meta"]["adapter"] == "ner"  # the record says which labeller answered
        assert {key: sorted(result[key]) for key in expected} == expected, adapter
    # The served model's own name is the base model, asked with the few-shot prompt (which here calls Apple a
    # place: the adapter's gain in one sentence; only that it answers is asserted).
    body = {"text": text, "persist": False, "adapter": "SmolLM2-135M-Instruct"}
    response = httpx.post(f"{server.url}/extract_entities", headers=server.headers, json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["adapter"] == "SmolLM2-135M-Instruct"
    assert "Angela Merkel" in response.json()["persons"]
