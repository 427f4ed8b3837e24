# bittts_tf: `make demo` runs the main job, `make test` runs every test.
# Both set up what they need first: Debian packages, .venv, the C libraries.

PYTHON_SYSTEM ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build

CFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -fPIC
CORE_SRC := tflite/bittts_ternary.c
CORE_HDR := tflite/bittts_ternary.h tflite/bittts_spec.h
LITERT_SRC := tflite/bittts_litert_op.c tflite/bittts_litert_register.c
LITERT_HDR := tflite/bittts_litert_op.h tflite/litert_abi.h

.PHONY: setup apt venv lib demo test test-c test-py bench clean

setup: apt venv lib

apt: $(BUILD)/.apt-stamp
$(BUILD)/.apt-stamp: deps/apt.txt
	@mkdir -p $(BUILD)
	@missing=$$(grep -v '^#' deps/apt.txt | xargs -r -n1 sh -c 'dpkg -s "$$0" >/dev/null 2>&1 || echo "$$0"'); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

lib: $(BUILD)/libbittts_ternary.so $(BUILD)/libbittts_litert.so

$(BUILD)/libbittts_ternary.so: $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(CORE_SRC)

# Links nothing from TensorFlow: the registerer finds the interpreter's own
# MutableOpResolver::AddCustom at run time (see bittts_litert_register.c).
$(BUILD)/libbittts_litert.so: $(CORE_SRC) $(CORE_HDR) $(LITERT_SRC) $(LITERT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(CORE_SRC) $(LITERT_SRC) -ldl

$(BUILD)/test_ternary_decode: tests/c/test_ternary_decode.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -o $@ tests/c/test_ternary_decode.c $(CORE_SRC)

$(BUILD)/test_ternary_decode_asan: tests/c/test_ternary_decode.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -o $@ \
	  tests/c/test_ternary_decode.c $(CORE_SRC)

test-c: $(BUILD)/test_ternary_decode $(BUILD)/test_ternary_decode_asan
	$(BUILD)/test_ternary_decode
	$(BUILD)/test_ternary_decode_asan

test-py: setup
	$(PY) -m pytest -q -n 2 tests

test: setup test-c test-py

demo: setup
	$(PY) tools/demo.py --out_dir=out/demo

bench: setup
	$(PY) tools/bench_decode.py

clean:
	rm -rf $(BUILD) out
