/* Unit tests of firmware_stub/bittts_stream.c against independent references:
 * durations rounded half-to-even by comparing with the midpoint (not rintf),
 * windows cut from a whole regulated segment built row by row (not from a
 * cursor), PCM through a second conversion, CRC-32 bit by bit. Fresh random
 * inputs each run; the seed is printed and BITTTS_TEST_SEED=<seed> (or the
 * first argument, as in QEMU) replays it. Canaries around every output catch
 * writes out of bounds; the host build also runs under ASan/UBSan. No heap:
 * the same file runs bare-metal in QEMU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../firmware_stub/bittts_stream.h"

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    ++checks;                                              \
    if (!(cond)) {                                         \
      ++failures;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static unsigned long long rng_state;
static unsigned rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state >> 11);
}
static int rng_range(int lo, int hi) { return lo + (int)(rng() % (unsigned)(hi - lo + 1)); }
static float rng_float(float lo, float hi) {
  return lo + (hi - lo) * (float)(rng() & 0xFFFFFF) / (float)0x1000000;
}

#define CANARY_F (-12345.0f)
#define CANARY_I 0x5A5A5A5A

static bittts_stream_config small_config(void) {
  bittts_stream_config c;
  c.max_tokens = 12;
  c.num_symbols = 71;
  c.encoder_channels = 3;
  c.chunk_frames = 4;
  c.left_context = 5;
  c.right_context = 6;
  c.hop_length = 8;
  c.max_frames_per_token = 20;
  c.max_frames_per_segment = 60;
  return c;
}

static bittts_stream_config random_config(void) {
  bittts_stream_config c;
  c.max_tokens = rng_range(1, 16);
  c.num_symbols = rng_range(1, 300);
  c.encoder_channels = rng_range(1, 6);
  c.chunk_frames = rng_range(1, 7);
  c.left_context = rng_range(0, 6);
  c.right_context = rng_range(0, 6);
  c.hop_length = rng_range(1, 9);
  c.max_frames_per_token = rng_range(1, 14);
  c.max_frames_per_segment = rng_range(1, 120);
  return c;
}

/* ---- config ---------------------------------------------------------------- */

static void test_config(void) {
  bittts_stream_config c = small_config(), bad;
  int32_t *fields = (int32_t *)&bad;
  int k;
  CHECK(bittts_check_config(&c) == BITTTS_STREAM_OK, "small config");
  CHECK(bittts_window_frames(&c) == 15, "window %u", (unsigned)bittts_window_frames(&c));
  CHECK(bittts_check_config(NULL) == BITTTS_STREAM_NULL, "NULL config");
  CHECK(sizeof c == BITTTS_CONFIG_NUM_FIELDS * sizeof(int32_t), "config is int32 fields");
  for (k = 0; k < BITTTS_CONFIG_NUM_FIELDS; ++k) {
    bad = c;
    fields[k] = -1;
    CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "field %d = -1", k);
    CHECK(bittts_window_frames(&bad) == 0, "window of a bad config");
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
  bad.left_context = 1 << 12;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "window buffer beyond int32");
  bad = c;
  bad.chunk_frames = 1 << 16;
  bad.hop_length = 1 << 16;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "chunk samples beyond int32");
  bad = c;
  bad.left_context = 0x7FFFFFF0;
  CHECK(bittts_check_config(&bad) == BITTTS_STREAM_CONFIG, "window frames beyond int32");
  for (k = 0; k < 200; ++k) {
    bad = random_config();
    CHECK(bittts_check_config(&bad) == BITTTS_STREAM_OK, "random config %d", k);
  }
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

/* ---- windows ---------------------------------------------------------------- */

#define MAX_CH 6
#define MAX_TOKENS 16
#define MAX_FRAMES (16 * 14)
#define MAX_WINDOW 20
#define MAX_PADDED (MAX_FRAMES + 7 + 2 * 6)

static float g_hidden[MAX_TOKENS * MAX_CH + 1];
static float g_padded[MAX_PADDED * MAX_CH], g_padded_mask[MAX_PADDED];

/* The whole segment regulated and zero-padded as frame_chunks does it, one row
 * per frame from a running token index. */
static int build_padded(const bittts_stream_config *c, const int32_t *durations, int n) {
  int t, k, total = 0, row;
  for (t = 0; t < n; ++t) total += durations[t];
  memset(g_padded, 0, sizeof g_padded);
  memset(g_padded_mask, 0, sizeof g_padded_mask);
  row = c->left_context;
  for (t = 0; t < n; ++t)
    for (k = 0; k < durations[t]; ++k, ++row) {
      memcpy(g_padded + row * c->encoder_channels, g_hidden + t * c->encoder_channels,
             (size_t)c->encoder_channels * sizeof(float));
      g_padded_mask[row] = 1.0f;
    }
  return total;
}

static void random_segment(const bittts_stream_config *c, int n, int32_t *durations) {
  int i;
  for (i = 0; i < n * c->encoder_channels; ++i) g_hidden[i] = rng_float(-2.0f, 2.0f);
  for (i = 0; i < n; ++i) durations[i] = rng_range(1, c->max_frames_per_token);
}

static void test_windows(void) {
  static float frames[MAX_WINDOW * MAX_CH + 2];
  float mask[MAX_WINDOW + 2];
  int32_t durations[MAX_TOKENS];
  int round;
  for (round = 0; round < 1500; ++round) {
    const bittts_stream_config c = random_config();
    const int n = rng_range(1, c.max_tokens);
    const int window = c.left_context + c.chunk_frames + c.right_context;
    const size_t frames_len = (size_t)(window * c.encoder_channels);
    bittts_stream s;
    int total, k, chunks;
    random_segment(&c, n, durations);
    total = build_padded(&c, durations, n);
    chunks = (total + c.chunk_frames - 1) / c.chunk_frames;
    CHECK(bittts_stream_begin(&s, &c, g_hidden, (size_t)(n * c.encoder_channels), durations,
                              (size_t)n) == BITTTS_STREAM_OK, "begin round %d", round);
    CHECK(bittts_stream_remaining(&s) == chunks, "round %d: %d chunks, expected %d", round,
          (int)bittts_stream_remaining(&s), chunks);
    for (k = 0; k < chunks; ++k) {
      size_t keep = 0, i;
      int expected_keep = total - k * c.chunk_frames;
      if (expected_keep > c.chunk_frames) expected_keep = c.chunk_frames;
      for (i = 0; i < sizeof frames / sizeof *frames; ++i) frames[i] = CANARY_F;
      for (i = 0; i < sizeof mask / sizeof *mask; ++i) mask[i] = CANARY_F;
      CHECK(bittts_stream_window(&s, frames + 1, frames_len, mask + 1, (size_t)window, &keep) ==
                BITTTS_STREAM_OK, "round %d window %d", round, k);
      CHECK(memcmp(frames + 1, g_padded + k * c.chunk_frames * c.encoder_channels,
                   frames_len * sizeof(float)) == 0, "round %d window %d frames", round, k);
      CHECK(memcmp(mask + 1, g_padded_mask + k * c.chunk_frames, (size_t)window * sizeof(float)) ==
                0, "round %d window %d mask", round, k);
      CHECK(frames[0] == CANARY_F && frames[1 + frames_len] == CANARY_F, "frames canary");
      CHECK(mask[0] == CANARY_F && mask[1 + window] == CANARY_F, "mask canary");
      CHECK(keep == (size_t)(expected_keep * c.hop_length), "round %d window %d keep %u", round, k,
            (unsigned)keep);
    }
    {
      size_t keep = 0;
      CHECK(bittts_stream_remaining(&s) == 0, "chunks left over");
      CHECK(bittts_stream_window(&s, frames, frames_len, mask, (size_t)window, &keep) ==
                BITTTS_STREAM_STATE, "window after the last chunk");
    }
  }
}

static void test_window_errors(void) {
  const bittts_stream_config c = small_config();
  int32_t durations[3] = {2, 3, 4};
  float frames[15 * 3], mask[15];
  size_t keep;
  bittts_stream s;
  memset(&s, 0, sizeof s);
  CHECK(bittts_stream_window(&s, frames, 45, mask, 15, &keep) == BITTTS_STREAM_STATE,
        "window before begin");
  CHECK(bittts_stream_remaining(&s) == 0 && bittts_stream_remaining(NULL) == 0, "remaining");
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 8, durations, 3) == BITTTS_STREAM_SIZE,
        "hidden too short");
  CHECK(bittts_stream_window(&s, frames, 45, mask, 15, &keep) == BITTTS_STREAM_STATE,
        "window after a failed begin");
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 9, durations, 0) == BITTTS_STREAM_LENGTH, "0");
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 99, durations, 13) == BITTTS_STREAM_LENGTH, "13");
  durations[1] = 0;
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 9, durations, 3) == BITTTS_STREAM_VALUE, "0 frames");
  durations[1] = 21;
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 9, durations, 3) == BITTTS_STREAM_VALUE,
        "over the token cap");
  durations[1] = 3;
  CHECK(bittts_stream_begin(&s, &c, NULL, 9, durations, 3) == BITTTS_STREAM_NULL, "NULL hidden");
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 9, NULL, 3) == BITTTS_STREAM_NULL, "NULL durations");
  CHECK(bittts_stream_begin(NULL, &c, g_hidden, 9, durations, 3) == BITTTS_STREAM_NULL, "NULL s");
  CHECK(bittts_stream_begin(&s, &c, g_hidden, 9, durations, 3) == BITTTS_STREAM_OK, "begin");
  CHECK(bittts_stream_window(&s, frames, 44, mask, 15, &keep) == BITTTS_STREAM_SIZE, "frames");
  CHECK(bittts_stream_window(&s, frames, 45, mask, 14, &keep) == BITTTS_STREAM_SIZE, "mask");
  CHECK(bittts_stream_window(&s, NULL, 45, mask, 15, &keep) == BITTTS_STREAM_NULL, "NULL frames");
  CHECK(bittts_stream_window(&s, frames, 45, mask, 15, NULL) == BITTTS_STREAM_NULL, "NULL keep");
  CHECK(bittts_stream_remaining(&s) == 3, "failed windows consume nothing");
}

/* ---- PCM and the whole segment ---------------------------------------------- */

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

/* A stand-in frames graph: each sample a different mix of the window. */
#define MAX_CHUNK_SAMPLES (7 * 9)
typedef struct {
  const bittts_stream_config *c;
  float audio[MAX_CHUNK_SAMPLES];
  float pcm[MAX_FRAMES * 9 + 1];
  int16_t pcm16[MAX_FRAMES * 9 + 1];
  size_t n_pcm, n_pcm16, max_block16;
  int calls, fail_frames_at, fail_pcm_at, bad_length, null_audio;
} FakeGraph;

static void fake_graph(const bittts_stream_config *c, const float *frames, const float *mask,
                       float *audio) {
  const int window = c->left_context + c->chunk_frames + c->right_context;
  int j, r, ch;
  for (j = 0; j < c->chunk_frames * c->hop_length; ++j) {
    float sum = 0.0f;
    for (r = 0; r < window; ++r) {
      sum += mask[r] * 0.01f * (float)((j + r) % 7);
      for (ch = 0; ch < c->encoder_channels; ++ch)
        sum += frames[r * c->encoder_channels + ch] * 0.05f * (float)((j * 3 + r + ch) % 5 - 2);
    }
    audio[j] = sum;
  }
}

static int fake_run_frames(void *user, const float *frames, const float *mask,
                           const float **audio, size_t *audio_len) {
  FakeGraph *g = (FakeGraph *)user;
  if (g->calls++ == g->fail_frames_at) return 1;
  fake_graph(g->c, frames, mask, g->audio);
  *audio = g->null_audio ? NULL : g->audio;
  *audio_len = (size_t)(g->c->chunk_frames * g->c->hop_length) + (size_t)g->bad_length;
  return 0;
}

static int fake_pcm_f32(void *user, const float *samples, size_t n) {
  FakeGraph *g = (FakeGraph *)user;
  if (g->n_pcm + n > sizeof g->pcm / sizeof *g->pcm) return 1;
  memcpy(g->pcm + g->n_pcm, samples, n * sizeof *samples);
  g->n_pcm += n;
  return g->fail_pcm_at >= 0 && g->n_pcm > (size_t)g->fail_pcm_at;
}

static int fake_pcm_i16(void *user, const int16_t *samples, size_t n) {
  FakeGraph *g = (FakeGraph *)user;
  if (g->n_pcm16 + n > sizeof g->pcm16 / sizeof *g->pcm16) return 1;
  memcpy(g->pcm16 + g->n_pcm16, samples, n * sizeof *samples);
  g->n_pcm16 += n;
  if (n > g->max_block16) g->max_block16 = n;
  return 0;
}

static void test_speak_segment(void) {
  static FakeGraph g;
  static float expected[MAX_FRAMES * 9 + MAX_CHUNK_SAMPLES];
  static float frames[MAX_WINDOW * MAX_CH], log_d[MAX_TOKENS];
  float mask[MAX_WINDOW];
  int32_t durations[MAX_TOKENS], want[MAX_TOKENS];
  int round;
  for (round = 0; round < 400; ++round) {
    const bittts_stream_config c = random_config();
    const int n = rng_range(1, c.max_tokens);
    const int window = c.left_context + c.chunk_frames + c.right_context;
    const float scale = rng_float(0.5f, 2.0f);
    bittts_callbacks cb;
    bittts_duration_info info, ref_info;
    int i, k, total, chunks;
    size_t n_expected = 0;
    for (i = 0; i < n * c.encoder_channels; ++i) g_hidden[i] = rng_float(-2.0f, 2.0f);
    for (i = 0; i < n; ++i) log_d[i] = rng_float(-0.5f, 3.0f);
    durations_reference(&c, log_d, n, scale, want, &ref_info);
    total = build_padded(&c, want, n);
    chunks = (total + c.chunk_frames - 1) / c.chunk_frames;
    for (k = 0; k < chunks; ++k) {
      fake_graph(&c, g_padded + k * c.chunk_frames * c.encoder_channels,
                 g_padded_mask + k * c.chunk_frames, expected + n_expected);
      n_expected += (size_t)(c.chunk_frames * c.hop_length);
    }
    n_expected = (size_t)(total * c.hop_length);
    memset(&g, 0, sizeof g);
    g.c = &c;
    g.fail_frames_at = -1;
    g.fail_pcm_at = -1;
    cb.user = &g;
    cb.run_frames = fake_run_frames;
    cb.pcm_f32 = fake_pcm_f32;
    cb.pcm_i16 = fake_pcm_i16;
    CHECK(bittts_speak_segment(&c, g_hidden, (size_t)(n * c.encoder_channels), log_d, (size_t)n,
                               n, scale, durations, (size_t)n, frames,
                               (size_t)(window * c.encoder_channels), mask, (size_t)window, &cb,
                               &info) == BITTTS_STREAM_OK, "speak round %d", round);
    CHECK(g.calls == chunks, "round %d: %d frames-graph calls, expected %d", round, g.calls, chunks);
    CHECK(info.total_frames == total, "round %d total", round);
    CHECK(g.n_pcm == n_expected && memcmp(g.pcm, expected, n_expected * sizeof(float)) == 0,
          "round %d: float samples differ (%u, expected %u)", round, (unsigned)g.n_pcm,
          (unsigned)n_expected);
    CHECK(g.n_pcm16 == n_expected, "round %d: %u int16 samples", round, (unsigned)g.n_pcm16);
    for (i = 0; i < (int)n_expected && i < (int)g.n_pcm16; ++i)
      if (g.pcm16[i] != pcm16_reference(expected[i])) {
        CHECK(0, "round %d int16 sample %d", round, i);
        break;
      }
    CHECK(g.max_block16 <= 128, "int16 blocks of at most 128 samples");
  }
}

static void test_speak_errors(void) {
  static FakeGraph g;
  const bittts_stream_config c = small_config();
  float log_d[4] = {1.0f, 2.0f, 1.5f, 0.5f}, frames[45], mask[15];
  int32_t durations[4];
  bittts_callbacks cb;
  int i;
  for (i = 0; i < 12; ++i) g_hidden[i] = (float)i;
#define SPEAK() \
  bittts_speak_segment(&c, g_hidden, 12, log_d, 4, 4, 1.0f, durations, 4, frames, 45, mask, 15, \
                       &cb, NULL)
  memset(&g, 0, sizeof g);
  g.c = &c;
  g.fail_frames_at = 1;
  g.fail_pcm_at = -1;
  cb.user = &g;
  cb.run_frames = fake_run_frames;
  cb.pcm_f32 = fake_pcm_f32;
  cb.pcm_i16 = NULL;
  CHECK(SPEAK() == BITTTS_STREAM_CALLBACK, "frames callback failure");
  CHECK(g.calls == 2, "stopped at the failing call");
  memset(&g, 0, sizeof g);
  g.c = &c;
  g.fail_frames_at = -1;
  g.fail_pcm_at = 10;
  CHECK(SPEAK() == BITTTS_STREAM_CALLBACK, "PCM callback failure");
  g.fail_pcm_at = -1;
  g.bad_length = 1;
  CHECK(SPEAK() == BITTTS_STREAM_SIZE, "frames graph output of the wrong length");
  g.bad_length = 0;
  g.null_audio = 1;
  CHECK(SPEAK() == BITTTS_STREAM_NULL, "frames graph without output");
  g.null_audio = 0;
  cb.pcm_f32 = NULL;
  CHECK(SPEAK() == BITTTS_STREAM_NULL, "no PCM callback");
  cb.pcm_f32 = fake_pcm_f32;
  cb.run_frames = NULL;
  CHECK(SPEAK() == BITTTS_STREAM_NULL, "no frames callback");
  cb.run_frames = fake_run_frames;
  CHECK(bittts_speak_segment(&c, g_hidden, 12, log_d, 4, 4, 1.0f, durations, 4, frames, 44, mask,
                             15, &cb, NULL) == BITTTS_STREAM_SIZE, "frames buffer too short");
  CHECK(bittts_speak_segment(&c, g_hidden, 11, log_d, 4, 4, 1.0f, durations, 4, frames, 45, mask,
                             15, &cb, NULL) == BITTTS_STREAM_SIZE, "hidden too short");
  CHECK(bittts_speak_segment(&c, g_hidden, 12, log_d, 4, 4, 1.0f, durations, 3, frames, 45, mask,
                             15, &cb, NULL) == BITTTS_STREAM_SIZE, "durations buffer too short");
  CHECK(bittts_speak_segment(&c, g_hidden, 12, log_d, 4, 4, 1.0f, durations, 4, frames, 45, mask,
                             15, NULL, NULL) == BITTTS_STREAM_NULL, "no callbacks");
  CHECK(SPEAK() == BITTTS_STREAM_OK, "and then it works");
#undef SPEAK
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
  const char *seed_text = argc > 1 ? argv[1] : getenv("BITTTS_TEST_SEED");
  unsigned long long seed =
      seed_text ? strtoull(seed_text, NULL, 0) : (unsigned long long)time(NULL) * 2654435761ull;
  rng_state = seed ? seed : 1;
  printf("test_stream: seed %llu (replay with BITTTS_TEST_SEED=%llu)\n", seed, seed);
  test_config();
  test_text_input();
  test_durations_random();
  test_duration_ties();
  test_duration_caps_and_errors();
  print_exp_sweep();
  test_windows();
  test_window_errors();
  test_pcm16();
  test_speak_segment();
  test_speak_errors();
  test_model_check();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
