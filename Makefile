# The README's commands: `make playground` (try forge in a browser), `make run` (Slack) and `make test`.
PYTHON ?= python3
VENV := .venv

.PHONY: run playground test install bench manifest

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -e '.[test]'

run: install
	$(VENV)/bin/forge migrate || true
	$(VENV)/bin/forge serve

playground: install
	$(VENV)/bin/forge playground --demo

test:
	./scripts/test

manifest: install
	$(VENV)/bin/forge manifest > manifest.yml
