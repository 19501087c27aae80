# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv

.PHONY: run test install bench manifest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[test]'

run: install
	$(VENV)/bin/forge migrate || true
	$(VENV)/bin/forge serve

test:
	./scripts/test

manifest: install
	$(VENV)/bin/forge manifest > manifest.yml
