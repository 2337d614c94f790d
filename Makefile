# Shortcuts for the commands the README names; each is one command you can also run by hand.
# BENCH_DATABASE_URL / BENCH_REDIS_URL (and TEST_* for the suite) name servers to use.
PYTHON ?= python

.PHONY: test bench bench-short chaos chaos-short fuzz soak

test:                ## the whole suite (the README's test command)
	$(PYTHON) -m pytest

bench:               ## every benchmark at the issue's sizes, one JSON object
	$(PYTHON) -m bench all

bench-short:         ## every benchmark at small sizes: does each still run?
	$(PYTHON) -m bench all --short

chaos:               ## kill -9 workers, flush and restart Redis, restart PostgreSQL, kill the mail listener
	$(PYTHON) -m bench.chaos_queue
	$(PYTHON) -m bench.chaos_store

chaos-short:         ## the short chaos forms CI runs
	$(PYTHON) -m pytest tests/test_chaos_queue.py tests/test_chaos_store.py

fuzz:                ## schemathesis on the API as every caller, and a long property search
	$(PYTHON) -m bench.fuzz_api --examples 20
	FUZZ_EXAMPLES=5000 FUZZ_RANDOM=1 $(PYTHON) -m pytest -p no:schemathesis \
		tests/test_fuzz_email.py tests/test_fuzz_sms_form.py tests/test_fuzz_rules.py

soak:                ## ten minutes of whole conversations; memory and connections per process
	$(PYTHON) -m bench.soak --minutes 10
