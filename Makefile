PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test test-fast bench-codec robustness-table clean

# torch is pinned: 2.13.0, the build the tests are run with (a CPU build installs where no GPU is present).
install:
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test:
	$(PYTHON) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

bench-codec:
	$(PYTHON) scripts/bench/bench_codec.py

# docs/robustness.md: every bad input and fault the robustness tests try, and what dexter answered
robustness-table:
	DEXTER_ROBUSTNESS_TABLE=docs/robustness.md $(PYTHON) -m pytest -q tests/test_robustness.py tests/test_robustness_commands.py tests/test_faults.py tests/test_reliability.py tests/test_robustness_inputs.py

clean:
	rm -rf build *.egg-info .pytest_cache
