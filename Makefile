# Shortcuts for the scripts; the scripts are the source of truth.
.PHONY: serve check test bench

serve:
	bash scripts/serve

check:
	bash scripts/check

test:
	bash scripts/setup server,dev && .venv/bin/pytest

bench:
	bash bench/run
