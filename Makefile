PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test test-fast bench-codec robustness-table mutation clean

# torch is pinned to 2.13.0, the version the tests run with (the build is the one your package index serves).
install:
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	# audio: TinySoundFont without its real-time playback dependency (PyAudio, which needs PortAudio)
	$(PIP) install --no-deps tinysoundfont==0.3.7
	# a General MIDI SoundFont (FluidR3_GM, MIT licence) where apt-get can install one
	@if [ ! -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q --no-install-recommends fluid-soundfont-gm >/dev/null 2>&1 \
		|| echo "note: no SoundFont installed; audio needs --soundfont FILE or DEXTER_SOUNDFONT"; fi

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

# mutation testing of the code that makes the model learn and sample ([tool.mutmut] in pyproject.toml);
# not part of CI: it takes hours (it resumes where it stopped). One thread per test process: forked test
# processes that inherit torch's thread pool can hang. The surviving mutants and why are in docs/mutation.md.
mutation:
	$(PIP) install -q mutmut==3.8.1
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 mutmut run --max-children 2; mutmut results

clean:
	rm -rf build *.egg-info .pytest_cache
