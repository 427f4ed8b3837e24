# bittts_tf: `make demo` runs the main job, `make test` runs every test.
# Both set up what they need first: Debian packages, .venv, the C libraries.

PYTHON_SYSTEM ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build

CFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -fPIC
# The sanitizer builds of the unit tests: any report (a signed overflow too)
# ends the run with a failure instead of printing and going on.
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CORE_SRC := tflite/bittts_ternary.c
CORE_HDR := tflite/bittts_ternary.h tflite/bittts_spec.h
LITERT_SRC := tflite/bittts_litert_op.c tflite/bittts_litert_register.c
LITERT_HDR := tflite/bittts_litert_op.h tflite/litert_abi.h
# The firmware's TFLM kernel built for the tflite-micro wheel's Python
# interpreter, against our declarations of the wheel's ABI (no TFLM headers).
TFLM_PY_SRC := firmware_stub/bittts_tflm_kernel.cc tflite/bittts_tflm_wheel.cc
TFLM_PY_HDR := firmware_stub/bittts_tflm_kernel.h $(wildcard tflite/tflm_wheel_abi/tensorflow/lite/*/*.h tflite/tflm_wheel_abi/tensorflow/lite/micro/kernels/*.h)
TFLM_PY_CXXFLAGS := -std=c++17 -O2 -Wall -Wextra -Werror -fPIC -fno-exceptions -fno-rtti \
  -fvisibility=hidden -fvisibility-inlines-hidden -Itflite/tflm_wheel_abi -Itflite -Ifirmware_stub
# The stream drives the inverse STFT: everything that links it links both.
STREAM_SRC := firmware_stub/bittts_stream.c firmware_stub/bittts_istft.c
STREAM_HDR := firmware_stub/bittts_stream.h firmware_stub/bittts_stream_spec.h \
  firmware_stub/bittts_istft.h firmware_stub/bittts_istft_spec.h

# Cortex-M builds (Debian's arm-none-eabi-gcc and newlib): hard-float M4 and M7.
ARM_CC := arm-none-eabi-gcc
ARM_SIZE := arm-none-eabi-size
ARM_CFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -ffunction-sections -fdata-sections
CPU_m4 := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
CPU_m7 := -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard
# QEMU's MPS2 boards: AN386 is a Cortex-M4, AN500 a Cortex-M7.
BOARD_m4 := mps2-an386
BOARD_m7 := mps2-an500
# Bare-metal test programs: our start-up and linker script, stdio and the exit
# status over semihosting (newlib's rdimon).
QEMU_LINK := --specs=rdimon.specs -nostartfiles -T tests/c/cortex_m/mps2.ld -Wl,--gc-sections
QEMU_START := tests/c/cortex_m/startup.c
QEMU_DEPS := $(QEMU_START) tests/c/cortex_m/mps2.ld firmware_stub/board/mps2_timer.h
comma := ,
QEMU_RUN = timeout 120 qemu-system-arm -M $(BOARD_$(1)) -nographic -monitor none -serial null \
  -semihosting-config enable=on,target=native,arg=$(2)$(if $(BITTTS_TEST_SEED),$(comma)arg=$(BITTTS_TEST_SEED)) \
  -kernel $(BUILD)/$(2)_$(1).elf

.PHONY: setup apt venv lib demo test test-c test-cortex-m firmware-size test-py bench bench-cortex-m fuzz fuzz-smoke clean

setup: apt venv lib

apt: $(BUILD)/.apt-stamp
$(BUILD)/.apt-stamp: deps/apt.txt
	@mkdir -p $(BUILD)
	@missing=$$(grep -v '^#' deps/apt.txt | xargs -r -n1 sh -c 'dpkg -s "$$0" >/dev/null 2>&1 || echo "$$0"'); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v festival >/dev/null || { echo "apt: festival is not on PATH after installing deps/apt.txt"; exit 1; }
	@touch $@

# uv installs the lock (its pin is the lock's own `uv==` line): 41 s against
# pip's 80 s for the same 2.9 GB venv on this 2-core machine (one run each).
# --compile-bytecode as pip does: without .pyc files (PYTHONDONTWRITEBYTECODE
# set, or a read-only venv) every process compiled TensorFlow's sources again,
# 14.3 s of CPU a `import tensorflow` against 5.4 s, and the suite ran 1.7x
# slower (pytest 19 min 41 s on a fresh clone).
UV_PIN := $(shell grep -m1 '^uv==' requirements.lock)
venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	@test -n "$(UV_PIN)" || { echo "venv: requirements.lock pins no uv"; exit 1; }
	$(PY) -m pip install -q --disable-pip-version-check "$(UV_PIN)"
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps --no-build-isolation -e .
	@touch $@

lib: $(BUILD)/libbittts_ternary.so $(BUILD)/libbittts_litert.so $(BUILD)/libbittts_stream.so \
  $(BUILD)/libbittts_tflm_py.so

$(BUILD)/libbittts_ternary.so: $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(CORE_SRC)

# Links nothing from TensorFlow: the registerer finds the interpreter's own
# MutableOpResolver::AddCustom at run time (see bittts_litert_register.c).
# Hidden visibility: exports only the registerer, its diagnostics and the
# kernel's guards (BITTTS_LITERT_EXPORT); Python loads it RTLD_LOCAL.
$(BUILD)/libbittts_litert.so: $(CORE_SRC) $(CORE_HDR) $(LITERT_SRC) $(LITERT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -fvisibility=hidden -shared -o $@ $(CORE_SRC) $(LITERT_SRC) -ldl

# Hidden visibility: the wheel's _runtime.so binds lazily, so any symbol we
# exported under a TFLM name (MicroPrintf, ...) could capture its calls.
# Exports only the registerer and its two diagnostics.
$(BUILD)/libbittts_tflm_py.so: $(TFLM_PY_SRC) $(TFLM_PY_HDR) $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)/tflm_py
	$(CC) $(CFLAGS) -fvisibility=hidden -c -o $(BUILD)/tflm_py/bittts_ternary.o $(CORE_SRC)
	$(CXX) $(TFLM_PY_CXXFLAGS) -shared -o $@ $(TFLM_PY_SRC) $(BUILD)/tflm_py/bittts_ternary.o -ldl

# For the ctypes tests that drive the C stream with the LiteRT graphs.
$(BUILD)/libbittts_stream.so: $(STREAM_SRC) $(STREAM_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(STREAM_SRC) -lm

$(BUILD)/test_ternary_decode: tests/c/test_ternary_decode.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -o $@ tests/c/test_ternary_decode.c $(CORE_SRC)

$(BUILD)/test_ternary_decode_asan: tests/c/test_ternary_decode.c $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -O1 $(SANITIZE) -o $@ tests/c/test_ternary_decode.c $(CORE_SRC)

$(BUILD)/test_stream: tests/c/test_stream.c $(STREAM_SRC) $(STREAM_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -o $@ tests/c/test_stream.c $(STREAM_SRC) -lm

$(BUILD)/test_stream_asan: tests/c/test_stream.c $(STREAM_SRC) $(STREAM_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -O1 $(SANITIZE) -o $@ tests/c/test_stream.c $(STREAM_SRC) -lm

test-c: $(BUILD)/test_ternary_decode $(BUILD)/test_ternary_decode_asan $(BUILD)/test_stream $(BUILD)/test_stream_asan
	$(BUILD)/test_ternary_decode
	$(BUILD)/test_ternary_decode_asan
	$(BUILD)/test_stream
	$(BUILD)/test_stream_asan

# Each firmware C99 file (the decoder, the stream between the graphs) alone,
# as a Cortex-M object: what `size` reports.
$(BUILD)/cortex_m/bittts_ternary_%.o: tflite/bittts_ternary.c $(CORE_HDR) $(BUILD)/.apt-stamp
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) -c -o $@ $<
$(BUILD)/cortex_m/bittts_stream_%.o: firmware_stub/bittts_stream.c $(STREAM_HDR) $(BUILD)/.apt-stamp
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) -c -o $@ $<

FIRMWARE_OBJS := $(foreach cpu,m4 m7,$(BUILD)/cortex_m/bittts_ternary_$(cpu).o $(BUILD)/cortex_m/bittts_stream_$(cpu).o)

firmware-size: $(FIRMWARE_OBJS)
	$(ARM_SIZE) $(FIRMWARE_OBJS)

$(BUILD)/test_stream_%.elf: tests/c/test_stream.c $(STREAM_SRC) $(STREAM_HDR) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) tests/c/test_stream.c $(STREAM_SRC) -lm

$(BUILD)/test_ternary_decode_%.elf: tests/c/test_ternary_decode.c $(CORE_SRC) $(CORE_HDR) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) tests/c/test_ternary_decode.c $(CORE_SRC) -lm

$(BUILD)/bench_decode_%.elf: tests/c/cortex_m/bench_decode.c $(CORE_SRC) $(CORE_HDR) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) tests/c/cortex_m/bench_decode.c $(CORE_SRC) -lm

# Decode instructions per weight on Cortex-M4 and M7 (QEMU, -icount).
bench-cortex-m: setup
	$(PY) tools/bench_decode_cortex_m.py

# The C unit tests built for Cortex-M4 and M7 and run in QEMU.
# The stream's durations match across platforms only if exp(d) rounded to
# float32 does: its hash over a sweep must be the host's (glibc) on newlib too.
test-cortex-m: firmware-size $(BUILD)/test_stream $(foreach cpu,m4 m7,$(BUILD)/test_stream_$(cpu).elf $(BUILD)/test_ternary_decode_$(cpu).elf)
	$(call QEMU_RUN,m4,test_stream) > $(BUILD)/test_stream_m4.log; status=$$?; cat $(BUILD)/test_stream_m4.log; exit $$status
	$(call QEMU_RUN,m7,test_stream) > $(BUILD)/test_stream_m7.log; status=$$?; cat $(BUILD)/test_stream_m7.log; exit $$status
	$(call QEMU_RUN,m4,test_ternary_decode)
	$(call QEMU_RUN,m7,test_ternary_decode)
	@$(BUILD)/test_stream | grep '^exp sweep' > $(BUILD)/exp_sweep_host.txt
	@for cpu in m4 m7; do grep '^exp sweep' $(BUILD)/test_stream_$$cpu.log | cmp -s - $(BUILD)/exp_sweep_host.txt || \
	  { echo "exp(d) rounded to float32 differs between the host and $$cpu: so would durations"; exit 1; }; done
	@echo "exp sweep: host, Cortex-M4 and Cortex-M7 agree ($$(cat $(BUILD)/exp_sweep_host.txt))"

# ---- inverse STFT in C (begin) --------------------------------------------------
# firmware_stub/bittts_istft.c: the frame vocoder's head frames -> samples, out of
# the TFLite graph, one C99 file for ctypes (build/libbittts_istft.so), TFLM and
# Cortex-M. This block hooks its library into `lib`, its unit test (host, ASan/UBSan,
# QEMU M4/M7) into `test-c` and `test-cortex-m`, and its objects into `firmware-size`.
ISTFT_SRC := firmware_stub/bittts_istft.c
ISTFT_HDR := firmware_stub/bittts_istft.h firmware_stub/bittts_istft_spec.h
ISTFT_OBJS := $(foreach cpu,m4 m7,$(BUILD)/cortex_m/bittts_istft_$(cpu).o)
.PHONY: test-c-istft test-cortex-m-istft bench-istft-cortex-m

lib: $(BUILD)/libbittts_istft.so
$(BUILD)/libbittts_istft.so: $(ISTFT_SRC) $(ISTFT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(ISTFT_SRC) -lm

$(BUILD)/test_istft: tests/c/test_istft.c $(ISTFT_SRC) $(ISTFT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -o $@ tests/c/test_istft.c $(ISTFT_SRC) -lm
$(BUILD)/test_istft_asan: tests/c/test_istft.c $(ISTFT_SRC) $(ISTFT_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -O1 $(SANITIZE) -o $@ tests/c/test_istft.c $(ISTFT_SRC) -lm

test-c: test-c-istft
test-c-istft: $(BUILD)/test_istft $(BUILD)/test_istft_asan
	$(BUILD)/test_istft
	$(BUILD)/test_istft_asan

$(BUILD)/cortex_m/bittts_istft_%.o: $(ISTFT_SRC) $(ISTFT_HDR) $(BUILD)/.apt-stamp
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) -c -o $@ $<
FIRMWARE_OBJS += $(ISTFT_OBJS)
firmware-size: $(ISTFT_OBJS)

$(BUILD)/test_istft_%.elf: tests/c/test_istft.c $(ISTFT_SRC) $(ISTFT_HDR) $(QEMU_DEPS) \
  $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) tests/c/test_istft.c \
	  $(ISTFT_SRC) -lm

# The inverse FFT of fixed inputs is plain float arithmetic (no libm, no FMA
# contraction in -std=c99), so its hash must be the host's on M4 and M7 too.
test-cortex-m: test-cortex-m-istft
test-cortex-m-istft: $(BUILD)/test_istft $(foreach cpu,m4 m7,$(BUILD)/test_istft_$(cpu).elf)
	$(call QEMU_RUN,m4,test_istft) > $(BUILD)/test_istft_m4.log; status=$$?; \
	  cat $(BUILD)/test_istft_m4.log; exit $$status
	$(call QEMU_RUN,m7,test_istft) > $(BUILD)/test_istft_m7.log; status=$$?; \
	  cat $(BUILD)/test_istft_m7.log; exit $$status
	@$(BUILD)/test_istft | grep '^irfft hash' > $(BUILD)/irfft_hash_host.txt
	@for cpu in m4 m7; do grep '^irfft hash' $(BUILD)/test_istft_$$cpu.log | \
	  cmp -s - $(BUILD)/irfft_hash_host.txt || \
	  { echo "the inverse FFT differs between the host and $$cpu"; exit 1; }; done
	@echo "irfft hash: host, Cortex-M4 and Cortex-M7 agree ($$(cat $(BUILD)/irfft_hash_host.txt))"

# Instructions per frame (QEMU -icount: the board's timer counts instructions).
$(BUILD)/bench_istft_%.elf: tests/c/cortex_m/bench_istft.c $(ISTFT_SRC) $(ISTFT_HDR) \
  $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) \
	  tests/c/cortex_m/bench_istft.c $(ISTFT_SRC) -lm
ISTFT_BENCH = timeout 300 qemu-system-arm -M $(BOARD_$(1)) -icount shift=0 -nographic \
  -monitor none -serial null -semihosting-config enable=on,target=native \
  -kernel $(BUILD)/bench_istft_$(1).elf
bench-istft-cortex-m: $(foreach cpu,m4 m7,$(BUILD)/bench_istft_$(cpu).elf)
	@echo "Cortex-M4 ($(BOARD_m4)):"; $(call ISTFT_BENCH,m4)
	@echo "Cortex-M7 ($(BOARD_m7)):"; $(call ISTFT_BENCH,m7)
# ---- inverse STFT in C (end) ----------------------------------------------------

# ---- fused ternary conv (begin) -------------------------------------------------
# tflite/bittts_ternary_conv.c: the C99 kernel of BitTTSTernaryConv (a 1-D conv
# that reads the packed kernel itself). It joins the LiteRT op library through
# LITERT_SRC and the TFLM-wheel library through an object appended to
# TFLM_PY_SRC (both recipes expand those when they run, after this block; the
# prerequisite lines below make them rebuild), and build/libbittts_ternary_conv.so
# for ctypes. Its unit test (host, ASan/UBSan, QEMU M4/M7) joins `test-c` and
# `test-cortex-m`, its Cortex-M objects `firmware-size`.
CONV_SRC := tflite/bittts_ternary_conv.c
CONV_HDR := tflite/bittts_ternary_conv.h
CONV_OBJS := $(foreach cpu,m4 m7,$(BUILD)/cortex_m/bittts_ternary_conv_$(cpu).o)
CONV_TEST_DEPS := tests/c/test_ternary_conv.c tests/c/reference_rescale.h $(CONV_SRC) $(CONV_HDR) $(CORE_SRC) $(CORE_HDR)
.PHONY: test-c-conv test-cortex-m-conv

LITERT_SRC += $(CONV_SRC)
$(BUILD)/libbittts_litert.so: $(CONV_SRC) $(CONV_HDR)
TFLM_PY_SRC += $(BUILD)/tflm_py/bittts_ternary_conv.o
$(BUILD)/libbittts_tflm_py.so: $(BUILD)/tflm_py/bittts_ternary_conv.o
$(BUILD)/tflm_py/bittts_ternary_conv.o: $(CONV_SRC) $(CONV_HDR) $(CORE_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fvisibility=hidden -c -o $@ $(CONV_SRC)

lib: $(BUILD)/libbittts_ternary_conv.so
$(BUILD)/libbittts_ternary_conv.so: $(CONV_SRC) $(CONV_HDR) $(CORE_SRC) $(CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -shared -o $@ $(CONV_SRC) $(CORE_SRC)

$(BUILD)/test_ternary_conv: $(CONV_TEST_DEPS)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -o $@ tests/c/test_ternary_conv.c $(CONV_SRC) $(CORE_SRC) -lm
$(BUILD)/test_ternary_conv_asan: $(CONV_TEST_DEPS)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -g -O1 $(SANITIZE) -o $@ tests/c/test_ternary_conv.c $(CONV_SRC) \
	  $(CORE_SRC) -lm

test-c: test-c-conv
test-c-conv: $(BUILD)/test_ternary_conv $(BUILD)/test_ternary_conv_asan
	$(BUILD)/test_ternary_conv
	$(BUILD)/test_ternary_conv_asan

$(BUILD)/cortex_m/bittts_ternary_conv_%.o: $(CONV_SRC) $(CONV_HDR) $(CORE_HDR) \
  $(BUILD)/.apt-stamp
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) -c -o $@ $<
FIRMWARE_OBJS += $(CONV_OBJS)
firmware-size: $(CONV_OBJS)

$(BUILD)/test_ternary_conv_%.elf: $(CONV_TEST_DEPS) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) \
	  tests/c/test_ternary_conv.c $(CONV_SRC) $(CORE_SRC) -lm

# The same test with -DBITTTS_CONV_NO_ACLE: the plain C int8 path on the cores
# whose normal build takes the DSP extension's SIMD one.
$(BUILD)/test_conv_plain_%.elf: $(CONV_TEST_DEPS) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) -DBITTTS_CONV_NO_ACLE $(QEMU_LINK) -o $@ $(QEMU_START) \
	  tests/c/test_ternary_conv.c $(CONV_SRC) $(CORE_SRC) -lm

test-cortex-m: test-cortex-m-conv
test-cortex-m-conv: $(foreach cpu,m4 m7,$(BUILD)/test_ternary_conv_$(cpu).elf \
  $(BUILD)/test_conv_plain_$(cpu).elf)
	$(call QEMU_RUN,m4,test_ternary_conv)
	$(call QEMU_RUN,m7,test_ternary_conv)
	$(call QEMU_RUN,m4,test_conv_plain)
	$(call QEMU_RUN,m7,test_conv_plain)

# Instructions of the fused conv against decode + TFLM's reference loop
# (QEMU -icount: the board's timer counts instructions; see bench_conv.c).
.PHONY: bench-conv-cortex-m
$(BUILD)/bench_conv_%.elf: tests/c/cortex_m/bench_conv.c $(CONV_SRC) $(CONV_HDR) $(CORE_SRC) \
  $(CORE_HDR) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	@mkdir -p $(BUILD)
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) $(QEMU_LINK) -o $@ $(QEMU_START) \
	  tests/c/cortex_m/bench_conv.c $(CONV_SRC) $(CORE_SRC) -lm
CONV_BENCH = timeout 600 qemu-system-arm -M $(BOARD_$(1)) -icount shift=0 -nographic \
  -monitor none -serial null -semihosting-config enable=on,target=native \
  -kernel $(BUILD)/bench_conv_$(1).elf
bench-conv-cortex-m: $(foreach cpu,m4 m7,$(BUILD)/bench_conv_$(cpu).elf)
	@echo "Cortex-M4 ($(BOARD_m4)):"; $(call CONV_BENCH,m4)
	@echo "Cortex-M7 ($(BOARD_m7)):"; $(call CONV_BENCH,m7)
# ---- fused ternary conv (end) ---------------------------------------------------

# libFuzzer on the decoders and the LiteRT kernel (clang, tests/c/fuzz_*.c):
# 1,000,000 executions per target, report in out/fuzz_report.json. The test
# suite runs the smoke run (tests/test_fuzz_kernels.py).
fuzz: setup
	$(PY) tools/fuzz_kernels.py

fuzz-smoke: setup
	$(PY) tools/fuzz_kernels.py --smoke

# The slowest 15 tests are listed at the end; out/suite.xml keeps every test's
# time for tools/seed_sweep.py --junit. --dist loadfile: a module's tests share
# one worker, so a module fixture (a random voice, its exported graphs) is built
# once, not in both: 12:15 against 13:05 of pytest wall time here.
# --no-loadscope-reorder: the files go out in the order tests/conftest.py
# gives them, the slowest first, so the run does not end on one long file.
test-py: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests --durations=15 --junitxml=out/suite.xml

# The C and QEMU tests are single-threaded builds and runs: two at a time
# (about 45 s of CPU in all), then pytest, which takes both cores itself.
test: setup
	@$(MAKE) --no-print-directory -j2 test-c test-cortex-m
	@$(MAKE) --no-print-directory test-py

demo: setup
	$(PY) tools/demo.py --out_dir=out/demo

bench: setup
	$(PY) tools/bench_decode.py

clean:
	rm -rf $(BUILD) out

# ---- the C99 engine (begin) -----------------------------------------------------
# firmware_stub/bittts_engine*.c: the voice's int8 graphs without TFLite Micro.
# build/libbittts_engine.so is the host build the Python side drives (ctypes).
ENGINE_SRC := firmware_stub/bittts_engine.c firmware_stub/bittts_voice.c firmware_stub/bittts_engine_arith.c \
  firmware_stub/bittts_engine_fixed.c firmware_stub/bittts_engine_conv.c firmware_stub/bittts_engine_data.c \
  tflite/bittts_ternary_conv.c tflite/bittts_ternary.c $(STREAM_SRC)
ENGINE_HDR := firmware_stub/bittts_engine.h firmware_stub/bittts_voice.h firmware_stub/bittts_engine_kernels.h \
  firmware_stub/bittts_engine_fixed.h firmware_stub/bittts_engine_spec.h tflite/bittts_ternary_conv.h $(CORE_HDR) $(STREAM_HDR)
ENGINE_CFLAGS := -Itflite -Ifirmware_stub

lib: $(BUILD)/libbittts_engine.so
$(BUILD)/libbittts_engine.so: $(ENGINE_SRC) $(ENGINE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(ENGINE_CFLAGS) -shared -o $@ $(ENGINE_SRC) -lm

# The board image: the shipped voice speaks a phrase on QEMU's MPS2 boards
# (firmware_stub/board/speak_mps2.c), PCM over semihosting. newlib-nano: the
# image prints without stdio's formatter, and full newlib's would cost 20 KB.
VOICE_MODEL := models/slt_tiny
VOICE_DATA := $(BUILD)/voice_data
VOICE_PHRASE := Hello there.
# The lowering runs the host engine (LOGISTIC's table comes from its own
# arithmetic), so the library is a prerequisite.
$(VOICE_DATA)/bittts_model_data.c: $(VENV)/.stamp $(wildcard $(VOICE_MODEL)/*.int8.tflite) \
  $(VOICE_MODEL)/manifest.json $(wildcard bittts_tf/engine/*.py) bittts_tf/commands/firmware.py \
  $(BUILD)/libbittts_engine.so
	$(PY) tools/firmware.py --model_dir=$(VOICE_MODEL) --out_dir=$(VOICE_DATA) --variant=int8 \
	  --target=engine --phrase="$(VOICE_PHRASE)"
# SPEAK_DIR, VOICE_MODEL, VOICE_DATA and VOICE_PHRASE may be set on the command
# line to build another voice's image elsewhere (the tests' random voices),
# leaving the shipped voice's in build/.
SPEAK_DIR := $(BUILD)
$(SPEAK_DIR)/speak_%.elf: firmware_stub/board/speak_mps2.c $(VOICE_DATA)/bittts_model_data.c $(ENGINE_SRC) \
  $(ENGINE_HDR) $(QEMU_DEPS) $(BUILD)/.apt-stamp
	$(ARM_CC) $(ARM_CFLAGS) $(CPU_$*) --specs=nano.specs $(QEMU_LINK) -Wl,-Map=$(@:.elf=.map) \
	  $(ENGINE_CFLAGS) -I$(VOICE_DATA) -o $@ $(QEMU_START) firmware_stub/board/speak_mps2.c \
	  $(VOICE_DATA)/bittts_model_data.c $(ENGINE_SRC) -lm
	arm-none-eabi-objcopy -O binary $@ $(@:.elf=.bin)
.PHONY: firmware-image
firmware-image: $(BUILD)/speak_m7.elf $(BUILD)/speak_m4.elf
	$(ARM_SIZE) $^
# ---- the C99 engine (end) -------------------------------------------------------
