/* Unit tests of firmware_stub/bittts_stream.c against independent references:
 * durations rounded half-to-even by comparing with the midpoint (not rintf);
 * the frames graph's stream against a stand-in graph (delay lines, a leaky
 * accumulator and counters as its states, float32 or int8) whose every input
 * is compared with the segment regulated row by row (not from a cursor) and
 * quantized by a second quantizer, and whose samples are compared bit for
 * bit with the same spectrum rows computed over the whole segment and pushed
 * through the inverse STFT directly; PCM through a second conversion; CRC-32
 * bit by bit. Fresh random inputs each run; the seed is printed and
 * BITTTS_TEST_SEED=<seed> (or the first argument, as in QEMU) replays it.
 * Canaries around every output catch writes out of bounds, and every refused
 * call is checked to write nothing; the host build also runs under
 * ASan/UBSan. No heap: the same file runs bare-metal in QEMU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../firmware_stub/bittts_stream.h"

#include "test_harness.h"

#define CANARY_F (-12345.0f)
#define CANARY_I 0x5A5A5A5A

/* Sizes of the test streams (static buffers: QEMU's stack is small). */
#define MAX_CH 6
#define MAX_TOKENS 16
#define MAX_PER_TOKEN 14
#define MAX_FRAMES (MAX_TOKENS * MAX_PER_TOKEN)
#define MAX_STEP 7
#define MAX_DELAY 9
#define MAX_N_FFT 64
#define MAX_HEAD (MAX_N_FFT + 2)
#define MAX_PADDED (MAX_FRAMES + MAX_DELAY + MAX_STEP)
#define MAX_DUMMIES 3
#define MAX_STATE_LEN (MAX_DELAY * MAX_CH)
#define MAX_SAMPLES (MAX_FRAMES * (MAX_N_FFT / 2))
#define MAX_WORK (MAX_N_FFT + MAX_N_FFT + MAX_N_FFT + MAX_N_FFT / 2 + MAX_HEAD)

/* The stand-in graph's states: the last `delay` input frames, their masks, a
 * leaky accumulator of the masked frames, and counters of random sizes. */
enum { kHistory = 0, kMaskHistory = 1, kAccumulator = 2, kDummies = 3 };

static void set_stream_fields(bittts_stream_config *c, int stateless) {
  int i, dummies;
  c->n_fft = 4 << rng_range(0, 4);
  c->hop_length = (c->n_fft / 2) >> rng_range(0, 2);
  if (c->hop_length < 1) c->hop_length = 1;
  c->head_width = c->n_fft + 2;
  c->step = rng_range(1, MAX_STEP);
  memset(c->state_frames, 0, sizeof c->state_frames);
  memset(c->state_channels, 0, sizeof c->state_channels);
  if (stateless) {
    /* No state at all: only a graph without delay can be one. */
    c->delay = 0;
    c->num_states = 0;
    return;
  }
  c->delay = rng_range(0, MAX_DELAY);
  dummies = rng_range(0, MAX_DUMMIES);
  c->num_states = kDummies + dummies;
  c->state_frames[kHistory] = c->delay;
  c->state_channels[kHistory] = c->encoder_channels;
  c->state_frames[kMaskHistory] = c->delay;
  c->state_channels[kMaskHistory] = 1;
  c->state_frames[kAccumulator] = 1;
  c->state_channels[kAccumulator] = c->encoder_channels;
  for (i = 0; i < dummies; ++i) {
    c->state_frames[kDummies + i] = rng_range(0, 3);
    c->state_channels[kDummies + i] = rng_range(1, 4);
  }
}

static bittts_stream_config small_config(void) {
  bittts_stream_config c;
  memset(&c, 0, sizeof c);
  c.max_tokens = 12;
  c.num_symbols = 71;
  c.encoder_channels = 3;
  c.hop_length = 8;
  c.max_frames_per_token = 20;
  c.max_frames_per_segment = 60;
  c.step = 4;
  c.delay = 5;
  c.n_fft = 32;
  c.head_width = 34;
  c.num_states = 4;
  c.state_frames[kHistory] = 5;
  c.state_channels[kHistory] = 3;
  c.state_frames[kMaskHistory] = 5;
  c.state_channels[kMaskHistory] = 1;
  c.state_frames[kAccumulator] = 1;
  c.state_channels[kAccumulator] = 3;
  c.state_frames[kDummies] = 2;
  c.state_channels[kDummies] = 2;
  return c;
}

static bittts_stream_config random_config(void) {
  bittts_stream_config c;
  memset(&c, 0, sizeof c);
  c.max_tokens = rng_range(1, MAX_TOKENS);
  c.num_symbols = rng_range(1, 300);
  c.encoder_channels = rng_range(1, MAX_CH);
  c.max_frames_per_token = rng_range(1, MAX_PER_TOKEN);
  c.max_frames_per_segment = rng_range(1, 120);
  set_stream_fields(&c, rng() % 8 == 0);
  return c;
}

/* ---- config ---------------------------------------------------------------- */

/* A random source phase as a voice has it (cut-off and rates in Hz, log-F0
 * standardized about a few hundred Hz). */
static void set_source_fields(bittts_stream_config *c) {
  c->source_sample_rate = (float)rng_range(8000, 48000);
  c->source_cutoff = rng_float(100.0f, c->source_sample_rate / 2.0f);
  c->source_log_f0_mean = rng_float(4.0f, 6.0f);
  c->source_log_f0_std = rng_float(0.05f, 0.5f);
}

/* The source fields: all 0, or all in range; anything else refused, and a
 * call on a refused config writes nothing. */
static void test_source_config(void) {
  const float bad_values[] = {NAN, INFINITY, -INFINITY, -1.0f, 0.0f, -0.0f};
  bittts_stream_config c = small_config(), bad;
  float *fields[4];
  int32_t ids[3] = {1, 2, 3}, out[14], length = -7;
  int f, v, i, round;
  for (round = 0; round < 50; ++round) {
    c = random_config();
    set_source_fields(&c);
    CHECK(bittts_check_config(&c) == BITTTS_STREAM_OK, "random source %d", round);
    /* A source phase changes the phases of a copy of each row: int8 or not. */
    CHECK(bittts_stream_work_len(&c, 0) == bittts_stream_work_len(&c, 1), "source work");
    CHECK(bittts_stream_work_len(&c, 0) ==
              bittts_istft_state_len(c.n_fft, c.hop_length) + (size_t)c.n_fft +
                  (size_t)c.hop_length + (size_t)c.head_width,
          "source work %u", (unsigned)bittts_stream_work_len(&c, 0));
  }
  c = small_config();
  set_source_fields(&c);
  c.source_log_f0_mean = -c.source_log_f0_mean; /* any finite mean: F0 below 1 Hz is a voice */
  CHECK(bittts_check_config(&c) == BITTTS_STREAM_OK, "negative log-F0 mean");
  c.source_log_f0_mean = 0.0f;
  CHECK(bittts_check_config(&c) == BITTTS_STREAM_OK, "zero log-F0 mean");
  set_source_fields(&c);
  fields[0] = &bad.source_sample_rate;
  fields[1] = &bad.source_cutoff;
  fields[2] = &bad.source_log_f0_mean;
  fields[3] = &bad.source_log_f0_std;
  for (f = 0; f < 4; ++f)
    for (v = 0; v < (int)(sizeof bad_values / sizeof *bad_values); ++v) {
      /* The mean may be any finite value; a 0 cut-off turns the source off,
       * and then every other field must be 0 as well. */
      const int allowed = f == 2 && isfinite(bad_values[v]);
      bad = c;
      *fields[f] = bad_values[v];
      for (i = 0; i < 14; ++i) out[i] = CANARY_I;
      length = -7;
      CHECK(bittts_check_config(&bad) == (allowed ? BITTTS_STREAM_OK : BITTTS_STREAM_CONFIG),
            "source field %d = %g", f, (double)bad_values[v]);
      if (allowed) continue;
      CHECK(bittts_stream_work_len(&bad, 0) == 0, "work of a bad source");
      CHECK(bittts_text_input(&bad, ids, 3, out + 1, 12, &length) == BITTTS_STREAM_CONFIG,
            "text input on a bad source");
      for (i = 0; i < 14; ++i) CHECK(out[i] == CANARY_I, "written on a bad source");
      CHECK(length == -7, "length written on a bad source");
    }
  /* No source phase: a cut-off of 0 with any other field set is refused. */
  for (f = 0; f < 4; ++f) {
    if (f == 1) continue;
    bad = small_config();
    *fields[f] = rng_float(0.5f, 100.0f);
    CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "field %d without a cut-off", f);
  }
  bad = small_config();
  bad.source_cutoff = rng_float(1.0f, 4000.0f);
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "a cut-off alone");
}

static void test_config(void) {
  bittts_stream_config c = small_config(), bad;
  int32_t *fields = (int32_t *)&bad;
  int k;
  CHECK(bittts_check_config(&c) == BITTTS_STREAM_OK, "small config");
  CHECK(bittts_check_config(NULL) == BITTTS_STREAM_NULL, "NULL config");
  CHECK(sizeof c == (BITTTS_CONFIG_NUM_FIELDS + 2 * BITTTS_MAX_STATES) * sizeof(int32_t) +
                        BITTTS_CONFIG_NUM_SOURCE_FIELDS * sizeof(float),
        "config is int32 fields, then the two state arrays, then the source's floats");
  CHECK(bittts_stream_work_len(&c, 0) == 32 + 4 + 32 + 8, "float work %u",
        (unsigned)bittts_stream_work_len(&c, 0));
  CHECK(bittts_stream_work_len(&c, 1) == 32 + 4 + 32 + 8 + 34, "int8 work %u",
        (unsigned)bittts_stream_work_len(&c, 1));
  for (k = 0; k < BITTTS_CONFIG_NUM_FIELDS; ++k) {
    bad = c;
    fields[k] = -1;
    CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "field %d = -1", k);
    CHECK(bittts_stream_work_len(&bad, 0) == 0, "work of a bad config");
  }
  bad = c;
  bad.max_frames_per_token = BITTTS_MAX_FRAMES_LIMIT + 1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "token cap beyond float exactness");
  bad = c;
  bad.max_frames_per_segment = BITTTS_MAX_FRAMES_LIMIT + 1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "segment cap beyond float exactness");
  bad = c;
  bad.max_tokens = 1 << 20;
  bad.max_frames_per_token = 1 << 12;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "uncapped total beyond int32");
  bad = c;
  bad.encoder_channels = 1 << 20;
  bad.step = 1 << 12;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "frames buffer beyond int32");
  bad = c;
  bad.step = 1 << 26;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "spectrum beyond int32");
  bad = c;
  bad.delay = 0x7FFFFFF0;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "delay beyond int32");
  bad = c;
  bad.n_fft = 48;
  bad.head_width = 50;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "n_fft not a power of two");
  bad = c;
  bad.n_fft = 2048;
  bad.head_width = 2050;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "n_fft beyond the tables");
  bad = c;
  bad.hop_length = 32;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "hop beyond n_fft / 2");
  bad = c;
  bad.hop_length = 6;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "hop not a power of two");
  bad = c;
  bad.head_width = 33;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "head width not n_fft + 2");
  bad = c;
  bad.num_states = BITTTS_MAX_STATES + 1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "too many states");
  bad = c;
  bad.state_channels[2] = 0;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "a state without channels");
  bad = c;
  bad.state_frames[1] = -1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "a state of -1 frames");
  bad = c;
  bad.state_frames[4] = 1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "an entry past num_states");
  bad = c;
  bad.state_channels[BITTTS_MAX_STATES - 1] = 1;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "the last entry past num_states");
  bad = c;
  bad.state_frames[3] = 1 << 16;
  bad.state_channels[3] = 1 << 16;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "a state beyond int32");
  bad = c;
  bad.state_frames[3] = 0; /* a state of no frames is a state */
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_OK, "a state of 0 frames");
  for (k = 0; k < 200; ++k) {
    bad = random_config();
    CHECK(bittts_check_config(&bad) == BITTTS_STREAM_OK, "random config %d", k);
  }
  test_source_config();
  CHECK(strcmp(bittts_stream_status_message(BITTTS_STREAM_ID),
               "phoneme id outside the model's symbols") == 0, "message");
  CHECK(strcmp(bittts_stream_status_message((bittts_stream_status)99), "unknown status") == 0,
        "unknown status message");
}

/* ---- text input -------------------------------------------------------------- */

static void test_text_input(void) {
  int32_t ids[20], out[22];
  int round, i;
  for (round = 0; round < 300; ++round) {
    bittts_stream_config c = random_config();
    int n = rng_range(1, c.max_tokens);
    int32_t length = -7;
    for (i = 0; i < n; ++i) ids[i] = rng_range(0, c.num_symbols - 1);
    for (i = 0; i < 22; ++i) out[i] = CANARY_I;
    CHECK(bittts_text_input(&c, ids, (size_t)n, out + 1, (size_t)c.max_tokens, &length) ==
              BITTTS_STREAM_OK, "round %d", round);
    CHECK(length == n, "length %d, expected %d", (int)length, n);
    for (i = 0; i < c.max_tokens; ++i)
      CHECK(out[1 + i] == (i < n ? ids[i] : 0), "round %d phoneme %d", round, i);
    CHECK(out[0] == CANARY_I && out[1 + c.max_tokens] == CANARY_I, "text input canary");
    /* One id out of range, anywhere, and nothing is written. */
    for (i = 0; i < 22; ++i) out[i] = CANARY_I;
    ids[rng_range(0, n - 1)] = rng() & 1 ? c.num_symbols : -1 - (int32_t)(rng() % 5);
    CHECK(bittts_text_input(&c, ids, (size_t)n, out + 1, (size_t)c.max_tokens, &length) ==
              BITTTS_STREAM_ID, "round %d: id out of range", round);
    for (i = 0; i < 22; ++i) CHECK(out[i] == CANARY_I, "written on a bad id");
  }
  {
    bittts_stream_config c = small_config();
    int32_t length;
    for (i = 0; i < 20; ++i) ids[i] = 1;
    CHECK(bittts_text_input(&c, ids, 0, out, 22, &length) == BITTTS_STREAM_LENGTH, "no ids");
    CHECK(bittts_text_input(&c, ids, 13, out, 22, &length) == BITTTS_STREAM_LENGTH,
          "more ids than max_tokens");
    CHECK(bittts_text_input(&c, ids, 3, out, 11, &length) == BITTTS_STREAM_SIZE,
          "output shorter than max_tokens");
    CHECK(bittts_text_input(&c, NULL, 3, out, 22, &length) == BITTTS_STREAM_NULL, "NULL ids");
    CHECK(bittts_text_input(&c, ids, 3, NULL, 22, &length) == BITTTS_STREAM_NULL, "NULL out");
    CHECK(bittts_text_input(&c, ids, 3, out, 22, NULL) == BITTTS_STREAM_NULL, "NULL length");
    c.num_symbols = 0;
    CHECK(bittts_text_input(&c, ids, 3, out, 22, &length) == BITTTS_STREAM_CONFIG, "bad config");
  }
}

/* ---- durations ------------------------------------------------------------- */

/* Half-to-even by comparing with the midpoint in double, where the float and
 * its floor are exact. */
static double round_half_even_reference(float v) {
  const double x = (double)v, low = floor(x), diff = x - low;
  if (diff > 0.5) return low + 1.0;
  if (diff < 0.5) return low;
  return fmod(low, 2.0) == 0.0 ? low : low + 1.0;
}

/* The Python runtime's regulate_durations, step by step. */
static void durations_reference(const bittts_stream_config *c, const float *log_d, int n,
                                float scale, int32_t *out, bittts_duration_info *info) {
  double frames[32];
  long long total = 0, final_total = 0;
  int i, capped = 0;
  for (i = 0; i < n; ++i) {
    const float e = (float)exp((double)log_d[i]);
    const float product = scale * (e - 1.0f);
    frames[i] = isinf(product) ? HUGE_VAL : round_half_even_reference(product);
    if (frames[i] < 1.0) frames[i] = 1.0;
  }
  for (i = 0; i < n; ++i) {
    if (frames[i] > (double)c->max_frames_per_token) {
      frames[i] = c->max_frames_per_token;
      ++capped;
    }
    total += (long long)frames[i];
  }
  final_total = total;
  if (total > c->max_frames_per_segment) {
    final_total = 0;
    for (i = 0; i < n; ++i) {
      frames[i] = floor(frames[i] * ((double)c->max_frames_per_segment / (double)total));
      if (frames[i] < 1.0) frames[i] = 1.0;
      final_total += (long long)frames[i];
    }
  }
  for (i = 0; i < n; ++i) out[i] = (int32_t)frames[i];
  info->total_frames = (int32_t)final_total;
  info->capped_tokens = capped;
  info->uncapped_total = total > c->max_frames_per_segment ? (int32_t)total : 0;
}

static void test_durations_random(void) {
  float log_d[32];
  int32_t got[34], want[32];
  int round, i;
  for (round = 0; round < 3000; ++round) {
    bittts_stream_config c = random_config();
    const int n = rng_range(1, c.max_tokens);
    const float scale = rng() % 4 == 0 ? 1.0f : rng_float(0.1f, 10.0f);
    bittts_duration_info info, ref_info;
    for (i = 0; i < n; ++i) {
      switch (rng() % 8) {
        case 0: log_d[i] = rng_float(-40.0f, 0.0f); break;    /* 1 frame */
        case 1: log_d[i] = rng_float(3.0f, 100.0f); break;    /* capped, even +inf */
        default: log_d[i] = rng_float(-1.0f, 3.5f); break;
      }
    }
    for (i = 0; i < 34; ++i) got[i] = CANARY_I;
    durations_reference(&c, log_d, n, scale, want, &ref_info);
    CHECK(bittts_durations(&c, log_d, (size_t)n, n, scale, got + 1, (size_t)n, &info) ==
              BITTTS_STREAM_OK, "round %d", round);
    for (i = 0; i < n; ++i)
      CHECK(got[1 + i] == want[i], "round %d token %d: d=%.9g scale=%.9g: %d, expected %d",
            round, i, (double)log_d[i], (double)scale, (int)got[1 + i], (int)want[i]);
    CHECK(got[0] == CANARY_I && got[1 + n] == CANARY_I, "durations canary");
    CHECK(info.total_frames == ref_info.total_frames && info.capped_tokens == ref_info.capped_tokens &&
              info.uncapped_total == ref_info.uncapped_total,
          "round %d info %d/%d/%d, expected %d/%d/%d", round, (int)info.total_frames,
          (int)info.capped_tokens, (int)info.uncapped_total, (int)ref_info.total_frames,
          (int)ref_info.capped_tokens, (int)ref_info.uncapped_total);
  }
}

/* A float32 d whose exp, rounded to float32, is exactly `target`: the one
 * nearest log(target). */
static float log_with_exact_exp(float target) {
  float d = logf(target), up = d, down = d;
  int k;
  for (k = 0; k < 64; ++k) {
    if ((float)exp((double)up) == target) return up;
    if ((float)exp((double)down) == target) return down;
    up = nextafterf(up, INFINITY);
    down = nextafterf(down, -INFINITY);
  }
  return NAN;
}

/* scale * (e - 1) lands exactly on k + 1/2: numpy's np.round goes to even. */
static void test_duration_ties(void) {
  static const struct {
    float exp_value, scale;
    int32_t frames;
  } kTies[] = {
      {1.5f, 5.0f, 2},  {1.5f, 3.0f, 2},  {1.5f, 7.0f, 4},  {1.5f, 9.0f, 4},
      {1.25f, 10.0f, 2}, {1.25f, 6.0f, 2}, {1.25f, 2.0f, 1}, {1.25f, 4.0f, 1},
      {1.75f, 2.0f, 2}, {1.75f, 10.0f, 8}, {1.75f, 6.0f, 4}, {2.0f, 0.5f, 1},
      {2.0f, 2.5f, 2}, {2.0f, 3.5f, 4},   {1.125f, 4.0f, 1}, {1.125f, 0.5f, 1},
  };
  const bittts_stream_config c = small_config();
  size_t i;
  for (i = 0; i < sizeof kTies / sizeof *kTies; ++i) {
    const float d = log_with_exact_exp(kTies[i].exp_value);
    int32_t got = 0;
    CHECK(!isnan(d), "no float32 d with exp(d) == %g", (double)kTies[i].exp_value);
    CHECK(bittts_durations(&c, &d, 1, 1, kTies[i].scale, &got, 1, NULL) == BITTTS_STREAM_OK,
          "tie %u", (unsigned)i);
    CHECK(got == kTies[i].frames, "exp %g scale %g: %d frames, expected %d",
          (double)kTies[i].exp_value, (double)kTies[i].scale, (int)got, (int)kTies[i].frames);
  }
}

static void test_duration_caps_and_errors(void) {
  bittts_stream_config c = small_config();
  float log_d[12];
  int32_t got[12];
  bittts_duration_info info;
  int i;
  /* Every phoneme capped at 20, then 12 * 20 = 240 sped up to 60: each 5. */
  for (i = 0; i < 12; ++i) log_d[i] = 10.0f;
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, got, 12, &info) == BITTTS_STREAM_OK, "caps");
  for (i = 0; i < 12; ++i) CHECK(got[i] == 5, "capped duration %d", (int)got[i]);
  CHECK(info.total_frames == 60 && info.capped_tokens == 12 && info.uncapped_total == 240,
        "caps info %d %d %d", (int)info.total_frames, (int)info.capped_tokens,
        (int)info.uncapped_total);
  /* At least one frame each even after the speed-up: 12 tokens, cap 5. */
  c.max_frames_per_segment = 5;
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, got, 12, &info) == BITTTS_STREAM_OK, "floor");
  for (i = 0; i < 12; ++i) CHECK(got[i] == 1, "sped-up duration %d", (int)got[i]);
  CHECK(info.total_frames == 12 && info.uncapped_total == 240, "over the segment cap");
  c = small_config();
  log_d[3] = NAN;
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, got, 12, NULL) == BITTTS_STREAM_VALUE, "NaN");
  log_d[3] = -INFINITY;
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, got, 12, NULL) == BITTTS_STREAM_VALUE, "-inf");
  log_d[3] = 1.0f;
  CHECK(bittts_durations(&c, log_d, 12, 12, 0.099f, got, 12, NULL) == BITTTS_STREAM_SCALE,
        "scale below");
  CHECK(bittts_durations(&c, log_d, 12, 12, 10.01f, got, 12, NULL) == BITTTS_STREAM_SCALE,
        "scale above");
  CHECK(bittts_durations(&c, log_d, 12, 12, NAN, got, 12, NULL) == BITTTS_STREAM_SCALE,
        "scale NaN");
  CHECK(bittts_durations(&c, log_d, 12, 12, BITTTS_DURATION_SCALE_MIN, got, 12, NULL) ==
            BITTTS_STREAM_OK, "scale at the minimum");
  CHECK(bittts_durations(&c, log_d, 12, 0, 1.0f, got, 12, NULL) == BITTTS_STREAM_LENGTH, "0");
  CHECK(bittts_durations(&c, log_d, 12, 13, 1.0f, got, 12, NULL) == BITTTS_STREAM_LENGTH, "13");
  CHECK(bittts_durations(&c, log_d, 11, 12, 1.0f, got, 12, NULL) == BITTTS_STREAM_SIZE,
        "short input");
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, got, 11, NULL) == BITTTS_STREAM_SIZE,
        "short output");
  CHECK(bittts_durations(&c, NULL, 12, 12, 1.0f, got, 12, NULL) == BITTTS_STREAM_NULL, "NULL in");
  CHECK(bittts_durations(&c, log_d, 12, 12, 1.0f, NULL, 12, NULL) == BITTTS_STREAM_NULL,
        "NULL out");
  CHECK(bittts_durations(NULL, log_d, 12, 12, 1.0f, got, 12, NULL) == BITTTS_STREAM_NULL,
        "NULL config");
}

/* Durations agree across platforms only if exp(d) rounded to float32 does:
 * this prints a hash of it over a fixed sweep of float32 log-durations, which
 * `make test-cortex-m` compares between the host (glibc) and QEMU (newlib). */
static uint32_t exp_hash(uint32_t hash, uint32_t d_bits) {
  float d, e;
  uint32_t e_bits;
  memcpy(&d, &d_bits, sizeof d);
  e = (float)exp((double)d);
  memcpy(&e_bits, &e, sizeof e_bits);
  return (hash ^ e_bits) * 16777619u;
}

/* float32 bit patterns 4099 apart: -20 (0xC1A00000) towards -0, then +0 up
 * to 8 (0x41000000). */
static void print_exp_sweep(void) {
  uint32_t hash = 2166136261u, bits, n = 0;
  for (bits = 0xC1A00000u; bits > 0x80000000u; bits -= 4099u, ++n) hash = exp_hash(hash, bits);
  for (bits = 0; bits < 0x41000000u; bits += 4099u, ++n) hash = exp_hash(hash, bits);
  printf("exp sweep %u values hash %08x\n", (unsigned)n, (unsigned)hash);
}

/* ---- PCM ------------------------------------------------------------------------ */

/* int32 first (round-half-even, by comparing with the midpoint in double),
 * then the top 16 bits by floor division in double. */
static int16_t pcm16_reference(float x) {
  double z, low, q;
  if (isnan(x)) return 0;
  z = (double)(x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x) * 2147483648.0;
  low = floor(z);
  q = z - low > 0.5 ? low + 1.0 : z - low < 0.5 ? low : fmod(low, 2.0) == 0.0 ? low : low + 1.0;
  if (q > 2147483647.0) q = 2147483647.0;
  return (int16_t)floor(q / 65536.0);
}

static void test_pcm16(void) {
  static const struct {
    float in;
    int16_t out;
  } kKnown[] = {{1.0f, 32767},   {-1.0f, -32768}, {1.5f, 32767}, {-7.0f, -32768},
                {0.5f, 16384},   {-0.5f, -16384}, {1e-9f, 0},    {-1e-9f, -1},
                {0.0f, 0},       {-0.0f, 0},      {INFINITY, 32767}, {-INFINITY, -32768},
                {NAN, 0},        {0.99999994f, 32767}, {-0.99999994f, -32768},
                /* within 2^-32 below a multiple of 2^-15: up, not floor */
                {-3.05177818518132e-05f, -1}, {3.0517577e-05f, 1},
                /* ties at z = 65536 k - 1/2 and 65536 k + 1/2 go to even */
                {-65535.5f / 2147483648.0f, -1}, {-65536.5f / 2147483648.0f, -1},
                {65535.5f / 2147483648.0f, 1},   {131072.5f / 2147483648.0f, 2},
                {-131072.5f / 2147483648.0f, -2}, {-131073.5f / 2147483648.0f, -3}};
  size_t i;
  int k;
  for (i = 0; i < sizeof kKnown / sizeof *kKnown; ++i)
    CHECK(bittts_pcm16(kKnown[i].in) == kKnown[i].out, "pcm16(%g) = %d, expected %d",
          (double)kKnown[i].in, bittts_pcm16(kKnown[i].in), kKnown[i].out);
  for (k = 0; k < 100000; ++k) {
    /* Small samples too, where x * 2^31 has a fraction to round. */
    const float x = k % 2 ? rng_float(-1.2f, 1.2f) : rng_float(-1.0f, 1.0f) * 1e-4f;
    if (bittts_pcm16(x) != pcm16_reference(x)) {
      CHECK(0, "pcm16(%.9g) = %d, expected %d", (double)x, bittts_pcm16(x), pcm16_reference(x));
      break;
    }
  }
}

/* ---- the frames graph's stream ---------------------------------------------- */

/* A second quantizer: round half to even of x / scale (the float32 division
 * numpy does) by comparing with the midpoint in double, then the clamp. */
static int8_t quantize_reference(float x, bittts_quant q) {
  const double v = (double)(x / q.scale), low = floor(v), diff = v - low;
  double r = diff > 0.5 ? low + 1.0 : diff < 0.5 ? low : fmod(low, 2.0) == 0.0 ? low : low + 1.0;
  r += q.zero_point;
  return (int8_t)(r < -128.0 ? -128 : r > 127.0 ? 127 : r);
}

static float dequantize_reference(int8_t code, bittts_quant q) {
  return (float)((int)code - (int)q.zero_point) * q.scale;
}

static int8_t wrap_increment(int8_t code) { return (int8_t)(code == 127 ? -128 : code + 1); }

/* One spectrum row of the stand-in graph from a frame x, its mask m and the
 * accumulator: log-magnitudes well below the inverse STFT's clip, then
 * phases. The graph and the reference call it on data each computed its
 * own way. */
static void head_row(const bittts_stream_config *c, const float *x, float m, const float *acc,
                     float *row) {
  const int bins = c->n_fft / 2 + 1, channels = c->encoder_channels;
  int b;
  for (b = 0; b < bins; ++b) {
    row[b] = 0.5f * x[b % channels] + 0.25f * acc[(b + 1) % channels] + 0.1f * m - 1.0f;
    row[bins + b] = 1.5f * x[(b + 2) % channels] + acc[b % channels] + 0.01f * (float)b;
  }
}

/* The stand-in graph's frame F0 of a row (a source-phase config): a
 * standardized log-F0 within a few units, a voicing logit of either sign. */
static void f0_row(const bittts_stream_config *c, const float *x, float m, const float *acc,
                   float *f0) {
  const int channels = c->encoder_channels;
  f0[0] = 0.75f * x[0] - 0.5f * acc[channels - 1] + 0.2f * m;
  f0[1] = x[(channels + 1) / 2 % channels] + 0.25f * acc[0] - 0.1f;
}

/* A test segment: the config, the int8 parameters, the durations. */
typedef struct {
  bittts_stream_config c;
  int int8;
  bittts_quant frames_q, mask_q, spectrum_q, acc_q, f0_q;
  int32_t zero_points[BITTTS_MAX_STATES];
  int n_tokens;
  int32_t durations[MAX_TOKENS];
  int total, n_invokes;
} Case;

static float g_hidden[MAX_TOKENS * MAX_CH + 1];
/* The segment regulated row by row, padded with zero frames of mask 0 to
 * whole invokes: the values, their int8 codes, the values the graph computes
 * with (the codes dequantized, for int8), the accumulator after each frame. */
static float g_x[MAX_PADDED * MAX_CH], g_m[MAX_PADDED];
static int8_t g_xq[MAX_PADDED * MAX_CH], g_mq[MAX_PADDED];
static float g_xv[MAX_PADDED * MAX_CH], g_mv[MAX_PADDED], g_acc[MAX_PADDED * MAX_CH];
static float g_expected[MAX_SAMPLES];
static size_t g_n_expected;

/* The stand-in graph, its tensors (a canary on each side of every buffer the
 * stream writes) and what the PCM callbacks received. */
typedef struct {
  const Case *k;
  bittts_frames_io io;
  float frames_f[MAX_STEP * MAX_CH + 2], mask_f[MAX_STEP + 2];
  int8_t frames_q[MAX_STEP * MAX_CH + 2], mask_q[MAX_STEP + 2];
  float state_in_f[BITTTS_MAX_STATES][MAX_STATE_LEN + 2];
  int8_t state_in_q[BITTTS_MAX_STATES][MAX_STATE_LEN + 2];
  float state_out_f[BITTTS_MAX_STATES][MAX_STATE_LEN];
  int8_t state_out_q[BITTTS_MAX_STATES][MAX_STATE_LEN];
  bittts_state_slot slots[BITTTS_MAX_STATES];
  float spectrum_f[MAX_STEP * MAX_HEAD];
  int8_t spectrum_q[MAX_STEP * MAX_HEAD];
  float f0_f[MAX_STEP * 2];
  int8_t f0_q[MAX_STEP * 2];
  float work[MAX_WORK + 2];
  size_t work_len;
  int calls, input_errors, fail_frames_at, fail_pcm_at, bad_len, null_spectrum, nan_at;
  float pcm[MAX_SAMPLES + 1];
  int16_t pcm16[MAX_SAMPLES + 1];
  size_t n_pcm, n_pcm16, max_block16, odd_f32_blocks;
} Fake;

static Fake g, g_before;

static size_t state_len(const bittts_stream_config *c, int i) {
  return (size_t)c->state_frames[i] * (size_t)c->state_channels[i];
}

/* The value of state i's input element j, as the graph reads it. */
static float state_value(const Fake *f, int i, int j) {
  const Case *k = f->k;
  bittts_quant q = i == kHistory ? k->frames_q : i == kMaskHistory ? k->mask_q : k->acc_q;
  if (!k->int8) return f->state_in_f[i][1 + j];
  q.zero_point = k->zero_points[i];
  return dequantize_reference(f->state_in_q[i][1 + j], q);
}

/* Every input of invoke `call` against the segment regulated row by row,
 * and the states: zero at the first invoke, the previous outputs after. */
static int inputs_differ(const Fake *f, int call) {
  const Case *k = f->k;
  const bittts_stream_config *c = &k->c;
  const int channels = c->encoder_channels;
  int r, i;
  size_t j;
  for (r = 0; r < c->step; ++r) {
    const int t = call * c->step + r;
    if (k->int8 ? memcmp(f->frames_q + 1 + r * channels, g_xq + t * channels,
                         (size_t)channels) != 0 || f->mask_q[1 + r] != g_mq[t]
                : memcmp(f->frames_f + 1 + r * channels, g_x + t * channels,
                         (size_t)channels * sizeof(float)) != 0 || f->mask_f[1 + r] != g_m[t])
      return 1;
  }
  for (i = 0; i < c->num_states; ++i)
    for (j = 0; j < state_len(c, i); ++j) {
      if (k->int8 ? f->state_in_q[i][1 + j] != (call == 0 ? (int8_t)k->zero_points[i]
                                                          : f->state_out_q[i][j])
                  : memcmp(&f->state_in_f[i][1 + j], call == 0 ? &(float){0.0f}
                                                               : &f->state_out_f[i][j],
                           sizeof(float)) != 0)
        return 1;
    }
  return 0;
}

static int fake_run_frames(void *user, const void *frames, const void *mask,
                           const void **spectrum, size_t *spectrum_len) {
  Fake *f = (Fake *)user;
  const Case *k = f->k;
  const bittts_stream_config *c = &k->c;
  const int call = f->calls++, delay = c->delay, step = c->step, channels = c->encoder_channels;
  const int width = c->head_width, stateful = c->num_states > 0;
  static float x_window[(MAX_DELAY + MAX_STEP) * MAX_CH], m_window[MAX_DELAY + MAX_STEP];
  static int8_t xq_window[(MAX_DELAY + MAX_STEP) * MAX_CH], mq_window[MAX_DELAY + MAX_STEP];
  float acc[MAX_CH], row[MAX_HEAD], f0[2];
  int8_t acc_code[MAX_CH];
  int w, ch, r, b, i;
  size_t j;
  if (call == f->fail_frames_at) return 1;
  if (frames != f->io.frames || mask != f->io.mask || inputs_differ(f, call)) ++f->input_errors;
  for (w = 0; w < delay + step; ++w) {
    for (ch = 0; ch < channels; ++ch) {
      const int at = w * channels + ch, new_at = (w - delay) * channels + ch;
      if (w < delay) {
        x_window[at] = state_value(f, kHistory, at);
        xq_window[at] = k->int8 ? f->state_in_q[kHistory][1 + at] : 0;
      } else if (k->int8) {
        xq_window[at] = f->frames_q[1 + new_at];
        x_window[at] = dequantize_reference(xq_window[at], k->frames_q);
      } else {
        x_window[at] = f->frames_f[1 + new_at];
      }
    }
    if (w < delay) {
      m_window[w] = state_value(f, kMaskHistory, w);
      mq_window[w] = k->int8 ? f->state_in_q[kMaskHistory][1 + w] : 0;
    } else if (k->int8) {
      mq_window[w] = f->mask_q[1 + w - delay];
      m_window[w] = dequantize_reference(mq_window[w], k->mask_q);
    } else {
      m_window[w] = f->mask_f[1 + w - delay];
    }
  }
  for (ch = 0; ch < channels; ++ch) {
    acc[ch] = stateful ? state_value(f, kAccumulator, ch) : 0.0f;
    acc_code[ch] = k->int8 && stateful ? f->state_in_q[kAccumulator][1 + ch] : 0;
  }
  for (r = 0; r < step; ++r) {
    /* The accumulator takes the newest frame; the row is the frame `delay` behind. */
    for (ch = 0; stateful && ch < channels; ++ch) {
      acc[ch] = 0.5f * acc[ch] + x_window[(delay + r) * channels + ch] * m_window[delay + r];
      if (k->int8) {
        acc_code[ch] = quantize_reference(acc[ch], k->acc_q);
        acc[ch] = dequantize_reference(acc_code[ch], k->acc_q);
      }
    }
    head_row(c, x_window + r * channels, m_window[r], acc, row);
    for (b = 0; b < width; ++b) {
      if (k->int8) f->spectrum_q[r * width + b] = quantize_reference(row[b], k->spectrum_q);
      else f->spectrum_f[r * width + b] = row[b];
    }
    f0_row(c, x_window + r * channels, m_window[r], acc, f0);
    for (b = 0; b < 2; ++b) {
      if (k->int8) f->f0_q[r * 2 + b] = quantize_reference(f0[b], k->f0_q);
      else f->f0_f[r * 2 + b] = f0[b];
    }
  }
  if (call == f->nan_at) f->spectrum_f[(step - 1) * width] = NAN;
  for (i = 0; i < c->num_states; ++i) {
    for (j = 0; j < state_len(c, i); ++j) {
      const size_t last = (size_t)(step * (i == kHistory ? channels : 1)) + j;
      if (i == kHistory || i == kMaskHistory) {
        if (k->int8) f->state_out_q[i][j] = i == kHistory ? xq_window[last] : mq_window[last];
        else f->state_out_f[i][j] = i == kHistory ? x_window[last] : m_window[last];
      } else if (i == kAccumulator) {
        if (k->int8) f->state_out_q[i][j] = acc_code[j];
        else f->state_out_f[i][j] = acc[j];
      } else if (k->int8) {
        f->state_out_q[i][j] = wrap_increment(f->state_in_q[i][1 + j]);
      } else {
        f->state_out_f[i][j] = f->state_in_f[i][1 + j] + 1.0f;
      }
    }
  }
  *spectrum = f->null_spectrum ? NULL : k->int8 ? (const void *)f->spectrum_q
                                                : (const void *)f->spectrum_f;
  *spectrum_len = (size_t)(step * width + f->bad_len);
  return 0;
}

static int fake_pcm_f32(void *user, const float *samples, size_t n) {
  Fake *f = (Fake *)user;
  if (f->n_pcm + n > MAX_SAMPLES) return 1;
  if (n != (size_t)f->k->c.hop_length) ++f->odd_f32_blocks;
  memcpy(f->pcm + f->n_pcm, samples, n * sizeof *samples);
  f->n_pcm += n;
  return f->fail_pcm_at >= 0 && f->n_pcm > (size_t)f->fail_pcm_at;
}

static int fake_pcm_i16(void *user, const int16_t *samples, size_t n) {
  Fake *f = (Fake *)user;
  if (f->n_pcm16 + n > MAX_SAMPLES) return 1;
  memcpy(f->pcm16 + f->n_pcm16, samples, n * sizeof *samples);
  f->n_pcm16 += n;
  if (n > f->max_block16) f->max_block16 = n;
  return 0;
}

static bittts_callbacks fake_callbacks(void) {
  bittts_callbacks cb;
  cb.user = &g;
  cb.run_frames = fake_run_frames;
  cb.pcm_f32 = fake_pcm_f32;
  cb.pcm_i16 = fake_pcm_i16;
  return cb;
}

static bittts_quant random_quant(float lo, float hi, int zp_lo, int zp_hi) {
  bittts_quant q;
  q.scale = rng_float(lo, hi);
  q.zero_point = rng_range(zp_lo, zp_hi);
  return q;
}

/* A fresh random case on config c: int8 parameters and hidden rows. */
static void random_case(Case *k, const bittts_stream_config *c, int int8) {
  int i;
  memset(k, 0, sizeof *k);
  k->c = *c;
  k->int8 = int8;
  /* Ranges wide enough that some frames and rows clamp at -128 / 127. */
  k->frames_q = random_quant(0.01f, 0.05f, -20, 20);
  k->mask_q = rng() % 2 ? random_quant(0.002f, 0.01f, -128, 0) : (bittts_quant){1.0f / 255, -128};
  k->spectrum_q = random_quant(0.02f, 0.06f, -10, 10);
  k->acc_q = random_quant(0.03f, 0.08f, -30, 30);
  k->f0_q = random_quant(0.02f, 0.05f, -20, 20);
  for (i = 0; i < c->num_states; ++i) k->zero_points[i] = rng_range(-128, 127);
  if (c->num_states > 0) {
    k->zero_points[kHistory] = k->frames_q.zero_point;
    k->zero_points[kMaskHistory] = k->mask_q.zero_point;
    k->zero_points[kAccumulator] = k->acc_q.zero_point;
  }
  k->n_tokens = rng_range(1, c->max_tokens);
  if (int8 && rng() % 4 == 0) {
    /* Frames on multiples of half a step: ties, which go to the even code. */
    k->frames_q.scale = 0.0625f;
    for (i = 0; i < k->n_tokens * c->encoder_channels; ++i)
      g_hidden[i] = (float)rng_range(-80, 80) / 32.0f;
  } else {
    for (i = 0; i < k->n_tokens * c->encoder_channels; ++i) g_hidden[i] = rng_float(-2.0f, 2.0f);
  }
}

/* The references of case k once its durations are set: the regulated
 * segment, the accumulator, and the samples of its rows through the inverse
 * STFT (T pushes, then the flushes). */
static void build_reference(Case *k) {
  const bittts_stream_config *c = &k->c;
  const int channels = c->encoder_channels;
  static float state[MAX_N_FFT + MAX_N_FFT], scratch[MAX_N_FFT], out[MAX_N_FFT / 2];
  float acc[MAX_CH], row[MAX_HEAD], f0[2], theta = 0.0f;
  int8_t acc_code[MAX_CH];
  bittts_istft istft;
  bittts_istft_source source;
  int t, tok, d, ch, padded, b;
  size_t n_out;
  k->total = 0;
  for (tok = 0; tok < k->n_tokens; ++tok) k->total += k->durations[tok];
  k->n_invokes = (k->total + c->delay + c->step - 1) / c->step;
  padded = k->n_invokes * c->step;
  memset(g_x, 0, sizeof g_x);
  memset(g_m, 0, sizeof g_m);
  t = 0;
  for (tok = 0; tok < k->n_tokens; ++tok)
    for (d = 0; d < k->durations[tok]; ++d, ++t) {
      memcpy(g_x + t * channels, g_hidden + tok * channels, (size_t)channels * sizeof(float));
      g_m[t] = 1.0f;
    }
  for (t = 0; t < padded; ++t) {
    for (ch = 0; ch < channels; ++ch) {
      const int at = t * channels + ch;
      g_xq[at] = quantize_reference(g_x[at], k->frames_q);
      g_xv[at] = k->int8 ? dequantize_reference(g_xq[at], k->frames_q) : g_x[at];
    }
    g_mq[t] = quantize_reference(g_m[t], k->mask_q);
    g_mv[t] = k->int8 ? dequantize_reference(g_mq[t], k->mask_q) : g_m[t];
  }
  for (ch = 0; ch < channels; ++ch) {
    acc[ch] = 0.0f;
    acc_code[ch] = (int8_t)k->acc_q.zero_point;
  }
  for (t = 0; t < padded; ++t)
    for (ch = 0; ch < channels; ++ch) {
      if (c->num_states > 0) {
        acc[ch] = 0.5f * acc[ch] + g_xv[t * channels + ch] * g_mv[t];
        if (k->int8) {
          acc_code[ch] = quantize_reference(acc[ch], k->acc_q);
          acc[ch] = dequantize_reference(acc_code[ch], k->acc_q);
        }
      }
      g_acc[t * channels + ch] = acc[ch];
    }
  CHECK(bittts_istft_begin(&istft, c->n_fft, c->hop_length, state, sizeof state / sizeof *state)
            == BITTTS_ISTFT_OK, "reference inverse STFT");
  g_n_expected = 0;
  for (t = 0; t < k->total; ++t) {
    head_row(c, g_xv + t * channels, g_mv[t], g_acc + (t + c->delay) * channels, row);
    if (k->int8)
      for (b = 0; b < c->head_width; ++b)
        row[b] = dequantize_reference(quantize_reference(row[b], k->spectrum_q), k->spectrum_q);
    if (c->source_cutoff > 0.0f) {
      /* Frame t's F0 on its own row, the integrated F0 over the whole segment. */
      f0_row(c, g_xv + t * channels, g_mv[t], g_acc + (t + c->delay) * channels, f0);
      if (k->int8)
        for (b = 0; b < 2; ++b)
          f0[b] = dequantize_reference(quantize_reference(f0[b], k->f0_q), k->f0_q);
      source.sample_rate = c->source_sample_rate;
      source.cutoff = c->source_cutoff;
      source.log_f0_mean = c->source_log_f0_mean;
      source.log_f0_std = c->source_log_f0_std;
      CHECK(bittts_istft_source_phase(row, MAX_HEAD, c->n_fft, c->hop_length, f0, 2, &source,
                                      &theta) == BITTTS_ISTFT_OK, "reference source phase");
    }
    bittts_istft_push(&istft, row, (size_t)c->head_width, 1.0f, scratch, MAX_N_FFT, out,
                      MAX_N_FFT / 2, &n_out);
    memcpy(g_expected + g_n_expected, out, n_out * sizeof *out);
    g_n_expected += n_out;
  }
  for (t = 0; t < bittts_istft_delay_frames(c->n_fft, c->hop_length); ++t) {
    bittts_istft_flush(&istft, out, MAX_N_FFT / 2, &n_out);
    memcpy(g_expected + g_n_expected, out, n_out * sizeof *out);
    g_n_expected += n_out;
  }
  CHECK(g_n_expected == (size_t)(k->total * c->hop_length), "reference samples %u",
        (unsigned)g_n_expected);
}

/* The fake graph's tensors bound for case k, every buffer between canaries. */
static void bind(const Case *k) {
  const bittts_stream_config *c = &k->c;
  int i;
  memset(&g, 0, sizeof g);
  g.k = k;
  g.fail_frames_at = g.fail_pcm_at = g.nan_at = -1;
  for (i = 0; i < MAX_STEP * MAX_CH + 2; ++i) {
    g.frames_f[i] = CANARY_F;
    g.frames_q[i] = 0x5A;
  }
  for (i = 0; i < MAX_STEP + 2; ++i) {
    g.mask_f[i] = CANARY_F;
    g.mask_q[i] = 0x5A;
  }
  for (i = 0; i < MAX_WORK + 2; ++i) g.work[i] = CANARY_F;
  g.io.int8 = k->int8;
  g.io.frames = k->int8 ? (void *)(g.frames_q + 1) : (void *)(g.frames_f + 1);
  g.io.frames_len = (size_t)(c->step * c->encoder_channels);
  g.io.mask = k->int8 ? (void *)(g.mask_q + 1) : (void *)(g.mask_f + 1);
  g.io.mask_len = (size_t)c->step;
  g.io.frames_quant = k->frames_q;
  g.io.mask_quant = k->mask_q;
  g.io.spectrum_quant = k->spectrum_q;
  g.io.states = g.slots;
  g.io.n_states = (size_t)c->num_states;
  if (c->source_cutoff > 0.0f) {
    g.io.frame_f0 = k->int8 ? (const void *)g.f0_q : (const void *)g.f0_f;
    g.io.frame_f0_len = (size_t)c->step * 2;
    g.io.frame_f0_quant = k->f0_q;
  }
  for (i = 0; i < BITTTS_MAX_STATES; ++i) {
    int j;
    for (j = 0; j < MAX_STATE_LEN + 2; ++j) {
      g.state_in_f[i][j] = CANARY_F;
      g.state_in_q[i][j] = 0x5A;
    }
    g.slots[i].input = k->int8 ? (void *)(g.state_in_q[i] + 1) : (void *)(g.state_in_f[i] + 1);
    g.slots[i].output = k->int8 ? (const void *)g.state_out_q[i] : (const void *)g.state_out_f[i];
    g.slots[i].len = state_len(c, i);
    g.slots[i].zero_point = k->zero_points[i];
    /* A state of no values may come without buffers. */
    if (g.slots[i].len == 0 && rng() % 2) {
      g.slots[i].input = NULL;
      g.slots[i].output = NULL;
    }
  }
  g.work_len = bittts_stream_work_len(c, k->int8);
}

static int canaries_intact(const Case *k) {
  const bittts_stream_config *c = &k->c;
  const size_t frames = (size_t)(c->step * c->encoder_channels);
  int i, ok = 1;
  if (k->int8) {
    ok &= g.frames_q[0] == 0x5A && g.frames_q[1 + frames] == 0x5A;
    ok &= g.mask_q[0] == 0x5A && g.mask_q[1 + c->step] == 0x5A;
  } else {
    ok &= g.frames_f[0] == CANARY_F && g.frames_f[1 + frames] == CANARY_F;
    ok &= g.mask_f[0] == CANARY_F && g.mask_f[1 + c->step] == CANARY_F;
  }
  ok &= g.work[0] == CANARY_F && g.work[1 + g.work_len] == CANARY_F;
  for (i = 0; i < BITTTS_MAX_STATES; ++i) {
    const size_t len = i < c->num_states ? state_len(c, i) : 0;
    ok &= g.state_in_q[i][0] == 0x5A && g.state_in_f[i][0] == CANARY_F;
    ok &= k->int8 ? g.state_in_q[i][1 + len] == 0x5A : g.state_in_f[i][1 + len] == CANARY_F;
  }
  return ok;
}

/* What every completed segment must show. */
static void check_segment_output(const Case *k, int round, const char *what) {
  size_t i;
  CHECK(g.calls == k->n_invokes, "%s round %d: %d invokes, expected %d", what, round, g.calls,
        k->n_invokes);
  CHECK(g.input_errors == 0, "%s round %d: %d invokes had other inputs", what, round,
        g.input_errors);
  CHECK(g.n_pcm == g_n_expected && memcmp(g.pcm, g_expected, g_n_expected * sizeof(float)) == 0,
        "%s round %d (int8 %d): float samples differ (%u, expected %u)", what, round, k->int8,
        (unsigned)g.n_pcm, (unsigned)g_n_expected);
  CHECK(g.odd_f32_blocks == 0, "%s: float samples come a hop at a time", what);
  CHECK(g.n_pcm16 == g_n_expected, "%s round %d: %u int16 samples", what, round,
        (unsigned)g.n_pcm16);
  for (i = 0; i < g_n_expected && i < g.n_pcm16; ++i)
    if (g.pcm16[i] != bittts_pcm16(g_expected[i])) {
      CHECK(0, "%s round %d int16 sample %u", what, round, (unsigned)i);
      break;
    }
  CHECK(g.max_block16 <= 128, "int16 blocks of at most 128 samples");
  CHECK(canaries_intact(k), "%s round %d: a canary was overwritten", what, round);
}

static void test_stream_walk(void) {
  static Case k;
  int round;
  for (round = 0; round < 1500; ++round) {
    const bittts_stream_config c = random_config();
    const bittts_callbacks cb = fake_callbacks();
    bittts_stream s;
    int i, steps = 0;
    random_case(&k, &c, round % 3 == 0);
    /* A third of the walks are a source-phase vocoder's (float32 and int8). */
    if (round % 4 < 2 && rng() % 3 == 0) set_source_fields(&k.c);
    for (i = 0; i < k.n_tokens; ++i) k.durations[i] = rng_range(1, c.max_frames_per_token);
    build_reference(&k);
    bind(&k);
    /* Half the int8 walks take the rows as codes made once per token
     * (bittts_hidden_codes, in place over a copy of the floats): the
     * reference quantizes every frame as the float walk does. */
    if (k.int8 && rng() % 2) {
      const size_t n = (size_t)(k.n_tokens * c.encoder_channels);
      static float copy[MAX_TOKENS * MAX_CH];
      memcpy(copy, g_hidden, n * sizeof *copy);
      CHECK(bittts_hidden_codes(copy, n, k.frames_q, (int8_t *)copy, n) == BITTTS_STREAM_OK,
            "codes round %d", round);
      CHECK(bittts_stream_begin_codes(&s, &k.c, (const int8_t *)copy, n, k.durations,
                                      (size_t)k.n_tokens, &g.io, g.work + 1, g.work_len) ==
                BITTTS_STREAM_OK, "begin with codes round %d", round);
    } else {
      CHECK(bittts_stream_begin(&s, &k.c, g_hidden, (size_t)(k.n_tokens * c.encoder_channels),
                                k.durations, (size_t)k.n_tokens, &g.io, g.work + 1, g.work_len) ==
                BITTTS_STREAM_OK, "begin round %d", round);
    }
    CHECK(bittts_stream_remaining(&s) == k.n_invokes, "round %d: %d invokes, expected %d",
          round, (int)bittts_stream_remaining(&s), k.n_invokes);
    while (bittts_stream_remaining(&s) > 0 && steps <= k.n_invokes) {
      CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_OK, "round %d step %d", round, steps);
      ++steps;
      CHECK(bittts_stream_remaining(&s) == k.n_invokes - steps, "remaining after a step");
    }
    check_segment_output(&k, round, "walk");
    /* Finished: a further step is refused and writes nothing. */
    memcpy(&g_before, &g, sizeof g);
    CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_STATE, "step after the last invoke");
    CHECK(memcmp(&g_before, &g, sizeof g) == 0, "a refused step wrote something");
  }
}

/* Each bad argument of bittts_stream_begin is refused, and nothing the
 * stream would write (inputs, states, work) changes. */
static void test_begin_refused(void) {
  static Case k;
  const bittts_callbacks cb = fake_callbacks();
  bittts_stream_config c = small_config();
  bittts_stream s;
  int32_t durations[3] = {2, 3, 4};
  int int8, i;
#define BEGIN(hidden_len, durations_, n, io, work_len) \
  bittts_stream_begin(&s, &k.c, g_hidden, hidden_len, durations_, n, io, g.work + 1, work_len)
#define REFUSED(status, call, what)                                                      \
  do {                                                                                   \
    memcpy(&g_before, &g, sizeof g);                                                     \
    CHECK((call) == (status), "int8 %d: %s: %d", int8, what, (int)(call));               \
    CHECK(memcmp(&g_before, &g, sizeof g) == 0, "int8 %d: %s: written anyway", int8, what); \
    CHECK(bittts_stream_remaining(&s) == 0, "%s: the record is unusable", what);         \
    CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_STATE, "%s: no step", what);      \
  } while (0)
  for (int8 = 0; int8 < 2; ++int8) {
    bittts_frames_io io;
    random_case(&k, &c, int8);
    bind(&k);
    for (i = 0; i < 12; ++i) g_hidden[i] = (float)i;
    CHECK(BEGIN(9, durations, 3, &g.io, g.work_len) == BITTTS_STREAM_OK, "begin");
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(8, durations, 3, &g.io, g.work_len), "hidden too short");
    REFUSED(BITTTS_STREAM_LENGTH, BEGIN(9, durations, 0, &g.io, g.work_len), "no tokens");
    REFUSED(BITTTS_STREAM_LENGTH, BEGIN(99, durations, 13, &g.io, g.work_len), "13 tokens");
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, g.work_len - 1), "work short");
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, NULL, 3, &g.io, g.work_len), "NULL durations");
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, NULL, g.work_len), "NULL io");
    REFUSED(BITTTS_STREAM_NULL,
            bittts_stream_begin(&s, &k.c, NULL, 9, durations, 3, &g.io, g.work + 1, g.work_len),
            "NULL hidden");
    REFUSED(BITTTS_STREAM_NULL,
            bittts_stream_begin(&s, NULL, g_hidden, 9, durations, 3, &g.io, g.work + 1,
                                g.work_len), "NULL config");
    REFUSED(BITTTS_STREAM_NULL,
            bittts_stream_begin(&s, &k.c, g_hidden, 9, durations, 3, &g.io, NULL, g.work_len),
            "NULL work");
    CHECK(bittts_stream_begin(NULL, &k.c, g_hidden, 9, durations, 3, &g.io, g.work + 1,
                              g.work_len) == BITTTS_STREAM_NULL, "NULL record");
    durations[1] = 0;
    REFUSED(BITTTS_STREAM_VALUE, BEGIN(9, durations, 3, &g.io, g.work_len), "0 frames");
    durations[1] = 21;
    REFUSED(BITTTS_STREAM_VALUE, BEGIN(9, durations, 3, &g.io, g.work_len), "over the cap");
    durations[1] = 3;
    k.c.step = 0;
    REFUSED(BITTTS_STREAM_CONFIG, BEGIN(9, durations, 3, &g.io, g.work_len), "bad config");
    k.c = c;
    io = g.io;
    g.io.frames = NULL;
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, &g.io, g.work_len), "NULL frames");
    g.io = io;
    g.io.mask = NULL;
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, &g.io, g.work_len), "NULL mask");
    g.io = io;
    g.io.states = NULL;
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, &g.io, g.work_len), "NULL states");
    g.io = io;
    g.io.frames_len = 11;
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, g.work_len), "frames short");
    g.io = io;
    g.io.mask_len = 3;
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, g.work_len), "mask short");
    g.io = io;
    g.io.n_states = 3;
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, g.work_len), "3 states");
    g.io = io;
    g.io.int8 = 2;
    REFUSED(BITTTS_STREAM_QUANT, BEGIN(9, durations, 3, &g.io, g.work_len), "int8 = 2");
    g.io = io;
    g.slots[kMaskHistory].len = 4;
    REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, g.work_len), "slot length");
    g.slots[kMaskHistory].len = 5;
    g.slots[kAccumulator].output = NULL;
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, &g.io, g.work_len), "NULL state output");
    g.slots[kAccumulator].output = int8 ? (const void *)g.state_out_q[kAccumulator]
                                        : (const void *)g.state_out_f[kAccumulator];
    g.slots[kDummies].input = NULL;
    REFUSED(BITTTS_STREAM_NULL, BEGIN(9, durations, 3, &g.io, g.work_len), "NULL state input");
    g.slots[kDummies].input = int8 ? (void *)(g.state_in_q[kDummies] + 1)
                                   : (void *)(g.state_in_f[kDummies] + 1);
    /* Quantization parameters matter only to an int8 stream. */
    {
      const float bad_scales[4] = {0.0f, -0.5f, NAN, INFINITY};
      const int bad_zero_points[2] = {-129, 128};
      bittts_quant *quants[3];
      int q, v;
      quants[0] = &g.io.frames_quant;
      quants[1] = &g.io.mask_quant;
      quants[2] = &g.io.spectrum_quant;
      for (q = 0; q < 3; ++q) {
        const bittts_quant saved = *quants[q];
        for (v = 0; v < 6; ++v) {
          if (v < 4) quants[q]->scale = bad_scales[v];
          else quants[q]->zero_point = bad_zero_points[v - 4];
          if (int8)
            REFUSED(BITTTS_STREAM_QUANT, BEGIN(9, durations, 3, &g.io, g.work_len), "quant");
          else
            CHECK(BEGIN(9, durations, 3, &g.io, g.work_len) == BITTTS_STREAM_OK, "float io");
          *quants[q] = saved;
        }
      }
      g.slots[kDummies].zero_point = 128;
      if (int8) REFUSED(BITTTS_STREAM_QUANT, BEGIN(9, durations, 3, &g.io, g.work_len), "zp");
      g.slots[kDummies].zero_point = k.zero_points[kDummies];
    }
    CHECK(BEGIN(9, durations, 3, &g.io, g.work_len) == BITTTS_STREAM_OK, "and then it works");
  }
  /* The int8 stream needs a dequantized row more of work than the float one. */
  random_case(&k, &c, 1);
  bind(&k);
  int8 = 1;
  REFUSED(BITTTS_STREAM_SIZE, BEGIN(9, durations, 3, &g.io, bittts_stream_work_len(&c, 0)),
          "float-sized work for int8");
#undef BEGIN
#undef REFUSED
}

/* Hidden values numpy has no defined code for: NaN becomes the zero point,
 * an infinity the end of the range. */
static void test_quantize_non_finite(void) {
  static Case k;
  const bittts_stream_config c = small_config();
  const bittts_callbacks cb = fake_callbacks();
  const int32_t durations[1] = {1};
  bittts_stream s;
  random_case(&k, &c, 1);
  bind(&k);
  g_hidden[0] = NAN;
  g_hidden[1] = INFINITY;
  g_hidden[2] = -INFINITY;
  g.fail_frames_at = 0;
  CHECK(bittts_stream_begin(&s, &k.c, g_hidden, 3, durations, 1, &g.io, g.work + 1, g.work_len)
            == BITTTS_STREAM_OK, "begin");
  CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_CALLBACK, "stopped in the graph");
  CHECK(g.frames_q[1] == k.frames_q.zero_point && g.frames_q[2] == 127 && g.frames_q[3] == -128,
        "codes %d %d %d", g.frames_q[1], g.frames_q[2], g.frames_q[3]);
}

/* bittts_hidden_codes against the second quantizer, on floats apart from
 * the codes, in place, and with the codes starting before the floats; each
 * bad argument refused with nothing written. */
static void test_hidden_codes(void) {
  enum { kN = 97, kLead = 40 };
  static union {
    float f[kLead / 4 + kN];
    int8_t b[(kLead / 4 + kN) * 4];
  } buf;
  static float x[kN];
  static int8_t expected[kN], codes[kN + 1];
  int round, i, lead;
  for (round = 0; round < 300; ++round) {
    const bittts_quant q = random_quant(0.01f, 0.05f, -30, 30);
    for (i = 0; i < kN; ++i) {
      /* A quarter on ties (half steps), a few beyond the clamp or not finite. */
      const int kind = (int)(rng() % 16);
      x[i] = kind < 4 ? ((float)rng_range(-300, 300) + 0.5f) * q.scale
             : kind == 4 ? rng_float(-1e4f, 1e4f)
             : kind == 5 ? (rng() % 2 ? INFINITY : -INFINITY)
             : kind == 6 ? NAN : rng_float(-3.0f, 3.0f);
      expected[i] = x[i] != x[i] ? (int8_t)q.zero_point : quantize_reference(x[i], q);
    }
    memset(codes, 0x5A, sizeof codes);
    CHECK(bittts_hidden_codes(x, kN, q, codes, kN) == BITTTS_STREAM_OK, "apart");
    CHECK(memcmp(codes, expected, kN) == 0 && codes[kN] == 0x5A, "apart round %d", round);
    /* In place (lead 0) or starting up to kLead bytes before the floats. */
    lead = round % 3 == 0 ? 0 : rng_range(1, kLead / 4) * 4;
    memcpy(&buf.f[lead / 4], x, sizeof x);
    CHECK(bittts_hidden_codes(&buf.f[lead / 4], kN, q, buf.b, kN) == BITTTS_STREAM_OK,
          "in place, lead %d", lead);
    CHECK(memcmp(buf.b, expected, kN) == 0, "in place round %d lead %d", round, lead);
  }
  {
    const bittts_quant q = {0.02f, 3}, bad[3] = {{0.0f, 0}, {NAN, 0}, {0.02f, 128}};
    memset(codes, 0x5A, sizeof codes);
    CHECK(bittts_hidden_codes(NULL, kN, q, codes, kN) == BITTTS_STREAM_NULL, "NULL floats");
    CHECK(bittts_hidden_codes(x, kN, q, NULL, kN) == BITTTS_STREAM_NULL, "NULL codes");
    CHECK(bittts_hidden_codes(x, kN, q, codes, kN - 1) == BITTTS_STREAM_SIZE, "short codes");
    for (i = 0; i < 3; ++i)
      CHECK(bittts_hidden_codes(x, kN, bad[i], codes, kN) == BITTTS_STREAM_QUANT, "bad quant %d",
            i);
    for (i = 0; i <= kN; ++i) CHECK(codes[i] == 0x5A, "a refused call wrote code %d", i);
    /* Codes from inside the floats would overwrite floats not yet read. */
    memcpy(buf.f, x, sizeof x);
    CHECK(bittts_hidden_codes(buf.f, kN, q, buf.b + 1, kN) == BITTTS_STREAM_SIZE,
          "codes inside the floats");
    CHECK(bittts_hidden_codes(buf.f, kN, q, buf.b + kN * 4 - 1, kN) == BITTTS_STREAM_SIZE,
          "codes from the last float's byte");
    CHECK(memcmp(buf.f, x, sizeof x) == 0, "a refused call wrote over the floats");
  }
}

/* bittts_stream_begin_codes: codes are an int8 frames input's, so a float
 * io is refused, as are NULL codes and codes shorter than a row; each
 * refusal ends the stream begun before it and writes nothing the stream
 * would write. bittts_check_frames_io refuses what begin would. */
static void test_begin_codes_refused(void) {
  static Case k;
  const bittts_callbacks cb = fake_callbacks();
  const int32_t durations[1] = {1};
  static const int8_t codes[MAX_CH] = {0};
  const bittts_stream_config c = small_config();
  const size_t row = (size_t)c.encoder_channels;
  bittts_stream s;
  int int8, bad;
  for (int8 = 0; int8 < 2; ++int8)
    for (bad = 0; bad < (int8 ? 2 : 1); ++bad) {
      random_case(&k, &c, int8);
      bind(&k);
      CHECK(bittts_stream_begin_codes(&s, &k.c, codes, row, durations, 1, &g.io, g.work + 1,
                                      g.work_len) == (int8 ? BITTTS_STREAM_OK : BITTTS_STREAM_QUANT),
            "codes for an int8 io begin, for a float io are refused (int8 %d)", int8);
      if (int8) {
        CHECK(bittts_stream_begin(&s, &k.c, g_hidden, row, durations, 1, &g.io, g.work + 1,
                                  g.work_len) == BITTTS_STREAM_OK, "a stream to end");
        memcpy(&g_before, &g, sizeof g);
        CHECK(bittts_stream_begin_codes(&s, &k.c, bad ? codes : NULL, bad ? row - 1 : row,
                                        durations, 1, &g.io, g.work + 1, g.work_len) ==
                  (bad ? BITTTS_STREAM_SIZE : BITTTS_STREAM_NULL),
              "codes %s", bad ? "shorter than a row" : "NULL");
        CHECK(memcmp(&g_before, &g, sizeof g) == 0, "a refused begin wrote something");
      }
      CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_STATE, "nothing begun (int8 %d)", int8);
    }
  random_case(&k, &c, 1);
  bind(&k);
  CHECK(bittts_check_frames_io(&k.c, &g.io, g.work_len) == BITTTS_STREAM_OK, "io checked");
  CHECK(bittts_check_frames_io(&k.c, &g.io, g.work_len - 1) == BITTTS_STREAM_SIZE, "short work");
  CHECK(bittts_check_frames_io(NULL, &g.io, g.work_len) == BITTTS_STREAM_NULL, "NULL config");
  CHECK(bittts_check_frames_io(&k.c, NULL, g.work_len) == BITTTS_STREAM_NULL, "NULL io");
  g.io.frames_quant.scale = 0.0f;
  CHECK(bittts_check_frames_io(&k.c, &g.io, g.work_len) == BITTTS_STREAM_QUANT, "zero scale");
}

/* Failures after a step has begun end the stream; refused steps write nothing. */
static void test_step_errors(void) {
  static Case k;
  const bittts_stream_config c = small_config();
  bittts_callbacks cb = fake_callbacks();
  bittts_stream s, before;
  int i, kind;
  for (kind = 0; kind < 7; ++kind) {
    random_case(&k, &c, kind == 6);
    k.n_tokens = 3;
    for (i = 0; i < 9; ++i) g_hidden[i] = rng_float(-1.0f, 1.0f);
    k.durations[0] = 4;
    k.durations[1] = 5;
    k.durations[2] = 6;
    build_reference(&k);
    bind(&k);
    cb = fake_callbacks();
    CHECK(bittts_stream_begin(&s, &k.c, g_hidden, 9, k.durations, 3, &g.io, g.work + 1,
                              g.work_len) == BITTTS_STREAM_OK, "begin");
    CHECK(bittts_stream_remaining(&s) == 5, "15 frames + delay 5 in steps of 4: 5 invokes");
    /* Refused before anything: nothing written, the stream goes on. */
    memcpy(&g_before, &g, sizeof g);
    memcpy(&before, &s, sizeof s);
    CHECK(bittts_stream_step(NULL, &cb) == BITTTS_STREAM_NULL, "NULL record");
    CHECK(bittts_stream_step(&s, NULL) == BITTTS_STREAM_NULL, "NULL callbacks");
    cb.run_frames = NULL;
    CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_NULL, "no frames callback");
    cb = fake_callbacks();
    cb.pcm_f32 = NULL;
    cb.pcm_i16 = NULL;
    CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_NULL, "no PCM callback");
    cb = fake_callbacks();
    CHECK(memcmp(&g_before, &g, sizeof g) == 0 && memcmp(&before, &s, sizeof s) == 0,
          "a refused step wrote something");
    switch (kind) {
      case 0: g.fail_frames_at = 2; break;
      case 1: g.fail_pcm_at = 3 * 8 + 1; break; /* within the samples of invoke 2 */
      case 2: g.bad_len = 1; break;
      case 3: g.bad_len = -1; break;
      case 4: g.null_spectrum = 1; break;
      case 5: g.nan_at = 2; break;
      default: break;
    }
    {
      const bittts_stream_status expected[7] = {
          BITTTS_STREAM_CALLBACK, BITTTS_STREAM_CALLBACK, BITTTS_STREAM_SIZE, BITTTS_STREAM_SIZE,
          BITTTS_STREAM_NULL, BITTTS_STREAM_SPECTRUM, BITTTS_STREAM_OK};
      bittts_stream_status status = BITTTS_STREAM_OK;
      int steps = 0;
      while (status == BITTTS_STREAM_OK && bittts_stream_remaining(&s) > 0) {
        status = bittts_stream_step(&s, &cb);
        ++steps;
      }
      CHECK(status == expected[kind], "kind %d: status %d", kind, (int)status);
      if (kind == 6) {
        check_segment_output(&k, 0, "int8 small");
        continue;
      }
      CHECK(steps == (kind < 2 || kind == 5 ? 3 : 1), "kind %d stopped at step %d", kind, steps);
      CHECK(bittts_stream_remaining(&s) == 0, "kind %d: a failed step ends the stream", kind);
      CHECK(bittts_stream_step(&s, &cb) == BITTTS_STREAM_STATE, "kind %d: no step after", kind);
      CHECK(canaries_intact(&k), "kind %d canaries", kind);
    }
  }
}

/* ---- a whole segment ---------------------------------------------------------- */

static void test_speak_segment(void) {
  static Case k;
  float log_d[MAX_TOKENS];
  int32_t durations[MAX_TOKENS + 2];
  int round;
  for (round = 0; round < 400; ++round) {
    const bittts_stream_config c = random_config();
    const bittts_callbacks cb = fake_callbacks();
    const float scale = rng_float(0.5f, 2.0f);
    bittts_duration_info info, ref_info;
    int i;
    random_case(&k, &c, round % 2);
    for (i = 0; i < k.n_tokens; ++i) log_d[i] = rng_float(-0.5f, 3.0f);
    durations_reference(&c, log_d, k.n_tokens, scale, k.durations, &ref_info);
    build_reference(&k);
    bind(&k);
    for (i = 0; i < MAX_TOKENS + 2; ++i) durations[i] = CANARY_I;
    CHECK(bittts_speak_segment(&k.c, g_hidden, (size_t)(k.n_tokens * c.encoder_channels), log_d,
                               (size_t)k.n_tokens, k.n_tokens, scale, durations + 1,
                               (size_t)k.n_tokens, &g.io, g.work + 1, g.work_len, &cb, &info) ==
              BITTTS_STREAM_OK, "speak round %d", round);
    CHECK(memcmp(durations + 1, k.durations, (size_t)k.n_tokens * sizeof(int32_t)) == 0,
          "round %d durations", round);
    CHECK(durations[0] == CANARY_I && durations[1 + k.n_tokens] == CANARY_I, "durations canary");
    CHECK(info.total_frames == k.total && info.total_frames == ref_info.total_frames,
          "round %d total", round);
    check_segment_output(&k, round, "speak");
  }
}

/* Refused before durations are written: nothing changes. */
static void test_speak_refused(void) {
  static Case k;
  const bittts_stream_config c = small_config();
  const bittts_callbacks good = fake_callbacks();
  bittts_callbacks cb = good;
  float log_d[4] = {1.0f, 2.0f, 1.5f, 0.5f};
  int32_t durations[4] = {CANARY_I, CANARY_I, CANARY_I, CANARY_I};
  bittts_frames_io io;
  int i;
  random_case(&k, &c, 1);
  bind(&k);
  io = g.io;
  for (i = 0; i < 12; ++i) g_hidden[i] = (float)i;
#define SPEAK(hidden_len, io_, work_len, cb_)                                                    \
  bittts_speak_segment(&k.c, g_hidden, hidden_len, log_d, 4, 4, 1.0f, durations, 4, io_,         \
                       g.work + 1, work_len, cb_, NULL)
#define REFUSED(status, call, what)                                                          \
  do {                                                                                       \
    memcpy(&g_before, &g, sizeof g);                                                         \
    CHECK((call) == (status), "%s: %d", what, (int)(call));                                  \
    CHECK(memcmp(&g_before, &g, sizeof g) == 0 && durations[0] == CANARY_I &&                \
              durations[3] == CANARY_I, "%s: written anyway", what);                         \
  } while (0)
  REFUSED(BITTTS_STREAM_SIZE, SPEAK(11, &g.io, g.work_len, &cb), "hidden too short");
  REFUSED(BITTTS_STREAM_SIZE, SPEAK(12, &g.io, g.work_len - 1, &cb), "work too short");
  REFUSED(BITTTS_STREAM_NULL, SPEAK(12, NULL, g.work_len, &cb), "no io");
  REFUSED(BITTTS_STREAM_NULL, SPEAK(12, &g.io, g.work_len, NULL), "no callbacks");
  cb.run_frames = NULL;
  REFUSED(BITTTS_STREAM_NULL, SPEAK(12, &g.io, g.work_len, &cb), "no frames callback");
  cb = good;
  cb.pcm_f32 = NULL;
  cb.pcm_i16 = NULL;
  REFUSED(BITTTS_STREAM_NULL, SPEAK(12, &g.io, g.work_len, &cb), "no PCM callback");
  cb = good;
  g.io.frames_quant.scale = 0.0f;
  REFUSED(BITTTS_STREAM_QUANT, SPEAK(12, &g.io, g.work_len, &cb), "bad scale");
  g.io = io;
  g.io.n_states = 5;
  REFUSED(BITTTS_STREAM_SIZE, SPEAK(12, &g.io, g.work_len, &cb), "5 states");
  g.io = io;
  REFUSED(BITTTS_STREAM_LENGTH,
          bittts_speak_segment(&k.c, g_hidden, 12, log_d, 4, 0, 1.0f, durations, 4, &g.io,
                               g.work + 1, g.work_len, &cb, NULL), "no tokens");
  REFUSED(BITTTS_STREAM_SIZE,
          bittts_speak_segment(&k.c, g_hidden, 12, log_d, 3, 4, 1.0f, durations, 4, &g.io,
                               g.work + 1, g.work_len, &cb, NULL), "log-durations too short");
  REFUSED(BITTTS_STREAM_SIZE,
          bittts_speak_segment(&k.c, g_hidden, 12, log_d, 4, 4, 1.0f, durations, 3, &g.io,
                               g.work + 1, g.work_len, &cb, NULL), "durations too short");
  REFUSED(BITTTS_STREAM_SCALE,
          bittts_speak_segment(&k.c, g_hidden, 12, log_d, 4, 4, 11.0f, durations, 4, &g.io,
                               g.work + 1, g.work_len, &cb, NULL), "scale");
  log_d[2] = NAN;
  REFUSED(BITTTS_STREAM_VALUE, SPEAK(12, &g.io, g.work_len, &cb), "NaN log-duration");
  log_d[2] = 1.5f;
  k.c.n_fft = 33;
  REFUSED(BITTTS_STREAM_CONFIG, SPEAK(12, &g.io, g.work_len, &cb), "bad config");
  k.c = c;
  g.fail_frames_at = 1;
  CHECK(SPEAK(12, &g.io, g.work_len, &cb) == BITTTS_STREAM_CALLBACK, "frames callback failure");
  CHECK(g.calls == 2, "stopped at the failing call");
  bind(&k);
  CHECK(SPEAK(12, &g.io, g.work_len, &cb) == BITTTS_STREAM_OK, "and then it works");
#undef SPEAK
#undef REFUSED
}

/* ---- model arrays ------------------------------------------------------------ */

static uint32_t crc32_reference(const uint8_t *data, size_t len) {
  uint32_t crc = 0xFFFFFFFFu;
  size_t i;
  int b;
  for (i = 0; i < len; ++i) {
    crc ^= data[i];
    for (b = 0; b < 8; ++b) crc = crc & 1u ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

static void test_model_check(void) {
  static uint8_t model[4096];
  const uint8_t check[] = "123456789";
  uint32_t crc;
  size_t len, i;
  int round;
  CHECK(bittts_crc32(0, check, 9) == 0xCBF43926u, "CRC-32 check value");
  CHECK(bittts_crc32(bittts_crc32(0, check, 4), check + 4, 5) == 0xCBF43926u, "CRC-32 continued");
  for (round = 0; round < 50; ++round) {
    len = (size_t)rng_range(20, 4096); /* room for root offset 16 */
    for (i = 0; i < len; ++i) model[i] = (uint8_t)rng();
    model[0] = 16;
    model[1] = model[2] = model[3] = 0;
    memcpy(model + 4, "TFL3", 4);
    crc = crc32_reference(model, len);
    CHECK(bittts_crc32(0, model, len) == crc, "CRC-32 of %u bytes", (unsigned)len);
    CHECK(bittts_check_model(model, len, len, crc) == BITTTS_STREAM_OK, "good model");
    CHECK(bittts_check_model(model, len - 1, len, crc) == BITTTS_STREAM_MODEL, "truncated");
    CHECK(bittts_check_model(model, len, len + 1, crc) == BITTTS_STREAM_MODEL, "wrong length");
    i = (size_t)rng_range(8, (int)len - 1);
    model[i] ^= (uint8_t)(1u << (rng() % 8));
    CHECK(bittts_check_model(model, len, len, crc) == BITTTS_STREAM_MODEL, "one bit flipped");
    model[i] ^= (uint8_t)(1u << (rng() % 8));
  }
  len = 64;
  for (i = 0; i < len; ++i) model[i] = 0;
  memcpy(model + 4, "TFL3", 4);
  model[0] = 60;
  CHECK(bittts_check_model(model, len, len, crc32_reference(model, len)) == BITTTS_STREAM_OK,
        "root at the end");
  model[0] = 61;
  CHECK(bittts_check_model(model, len, len, crc32_reference(model, len)) == BITTTS_STREAM_MODEL,
        "root past the end");
  model[0] = 16;
  model[5] = 'X';
  CHECK(bittts_check_model(model, len, len, crc32_reference(model, len)) == BITTTS_STREAM_MODEL,
        "not a .tflite");
  CHECK(bittts_check_model(model, 4, 4, crc32_reference(model, 4)) == BITTTS_STREAM_MODEL,
        "too short for a header");
  CHECK(bittts_check_model(NULL, 64, 64, 0) == BITTTS_STREAM_NULL, "NULL model");
}


int main(int argc, char **argv) {
  seed_rng("test_stream", argc > 1 ? argv[1] : getenv("BITTTS_TEST_SEED"));
  test_config();
  test_text_input();
  test_durations_random();
  test_duration_ties();
  test_duration_caps_and_errors();
  print_exp_sweep();
  test_pcm16();
  test_stream_walk();
  test_begin_refused();
  test_quantize_non_finite();
  test_hidden_codes();
  test_begin_codes_refused();
  test_step_errors();
  test_speak_segment();
  test_speak_refused();
  test_model_check();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
