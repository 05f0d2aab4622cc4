"""Benchmarks: this service against raw `vllm serve`, same engine flags, same load (`python -m bench`)."""
