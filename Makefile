.PHONY: setup run test check lint format typecheck

setup:
	bash scripts/setup.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff format --check .
	.venv/bin/ruff check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

typecheck:
	.venv/bin/mypy

check: setup lint typecheck
	.venv/bin/python -m pytest -q -p no:cacheprovider
