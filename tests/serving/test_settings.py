"""ServiceSettings: CLI strings and environment variables parsed, bad values refused naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serving.settings import ServiceSettings


def test_settings_parse_cli_strings_and_reject_bad_values() -> None:
    settings = ServiceSettings(
        adapters="viggo=/a/b,ner=s3://bucket/ner",
        vllm_args="--max-num-batched-tokens 8192",
        adapter_roots="/x,/y",
        max_num_seqs="32",
    )
    assert settings.adapters == {"viggo": "/a/b", "ner": "s3://bucket/ner"}
    assert settings.vllm_args == ["--max-num-batched-tokens", "8192"]
    assert [str(p) for p in settings.adapter_roots] == ["/x", "/y"]
    for bad in ({"max_num_seqs": 0}, {"gpu_memory_utilization": 1.5}, {"adapters": "bad name=/x"}, {"no_such": 1}):
        with pytest.raises(ValidationError) as info:
            ServiceSettings(**bad)
        assert next(iter(bad)) in str(info.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_NUM_SEQS", "12")
    monkeypatch.setenv("API_KEY", "s3cret")
    settings = ServiceSettings()
    assert settings.max_num_seqs == 12
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_viggo_span_values_takes_its_modes_and_the_old_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().viggo_span_values == "redecode"
    assert ServiceSettings(viggo_span_values="always").viggo_span_values == "always"
    monkeypatch.setenv("VIGGO_SPAN_VALUES", "True")  # the flag it was: true meant a grammar per request
    assert ServiceSettings().viggo_span_values == "always"
    assert ServiceSettings(viggo_span_values=False).viggo_span_values == "off"
    with pytest.raises(ValidationError, match="viggo_span_values"):
        ServiceSettings(viggo_span_values="sometimes")
