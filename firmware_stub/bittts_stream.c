#include "bittts_stream.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Durations must round exactly as numpy does in float32: wider evaluation or
 * fast-math would move the ties. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "bittts_stream.c needs FLT_EVAL_METHOD == 0 (float arithmetic in float)"
#endif
#ifdef __FAST_MATH__
#error "bittts_stream.c must not be built with -ffast-math: durations would round differently"
#endif

/* Caps are compared as float32 and must be exact there. */
typedef char bittts_frames_limit_is_exact_in_float
    [BITTTS_MAX_FRAMES_LIMIT <= (1L << FLT_MANT_DIG) ? 1 : -1];

#define kStreamMagic 0x42545453u /* "BTTS": a record bittts_stream_begin filled */
enum { kPcm16Block = 128 };      /* int16 samples converted per callback call */

const char *bittts_stream_status_message(bittts_stream_status status) {
  static const char *const messages[BITTTS_STREAM_NUM_STATUSES] =
      BITTTS_STREAM_STATUS_MESSAGES;
  if ((unsigned)status >= BITTTS_STREAM_NUM_STATUSES) return "unknown status";
  return messages[status];
}

/* An element count that indexes int32 and whose byte size fits size_t. */
static int count_fits(int64_t count) {
  return count >= 0 && count <= INT32_MAX &&
         (uint64_t)count <= (uint64_t)(SIZE_MAX / sizeof(float));
}

bittts_stream_status bittts_check_config(const bittts_stream_config *c) {
  int64_t window;
  if (c == NULL) return BITTTS_STREAM_NULL;
  if (c->max_tokens < 1 || c->num_symbols < 1 || c->encoder_channels < 1 ||
      c->chunk_frames < 1 || c->left_context < 0 || c->right_context < 0 ||
      c->hop_length < 1 || c->max_frames_per_token < 1 ||
      c->max_frames_per_token > BITTTS_MAX_FRAMES_LIMIT || c->max_frames_per_segment < 1 ||
      c->max_frames_per_segment > BITTTS_MAX_FRAMES_LIMIT)
    return BITTTS_STREAM_CONFIG;
  window = (int64_t)c->left_context + c->chunk_frames + c->right_context;
  /* The uncapped total, the capped total plus the padding of a whole chunk
   * and both contexts, and every buffer must count in int32. */
  if (!count_fits((int64_t)c->max_tokens * c->max_frames_per_token) ||
      !count_fits((int64_t)c->max_frames_per_segment + c->max_tokens + window) ||
      !count_fits((int64_t)c->max_tokens * c->encoder_channels) ||
      !count_fits(window * c->encoder_channels) ||
      !count_fits((int64_t)c->chunk_frames * c->hop_length))
    return BITTTS_STREAM_CONFIG;
  return BITTTS_STREAM_OK;
}

size_t bittts_window_frames(const bittts_stream_config *c) {
  if (bittts_check_config(c) != BITTTS_STREAM_OK) return 0;
  return (size_t)c->left_context + (size_t)c->chunk_frames + (size_t)c->right_context;
}

bittts_stream_status bittts_text_input(const bittts_stream_config *c, const int32_t *ids,
                                       size_t n_ids, int32_t *phonemes, size_t phonemes_len,
                                       int32_t *length) {
  bittts_stream_status status;
  size_t i;
  if (c == NULL || ids == NULL || phonemes == NULL || length == NULL)
    return BITTTS_STREAM_NULL;
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  if (n_ids < 1 || n_ids > (size_t)c->max_tokens) return BITTTS_STREAM_LENGTH;
  if (phonemes_len < (size_t)c->max_tokens) return BITTTS_STREAM_SIZE;
  /* All ids are checked before anything is written. */
  for (i = 0; i < n_ids; ++i)
    if (ids[i] < 0 || ids[i] >= c->num_symbols) return BITTTS_STREAM_ID;
  memcpy(phonemes, ids, n_ids * sizeof *phonemes);
  for (i = n_ids; i < (size_t)c->max_tokens; ++i) phonemes[i] = 0;
  *length = (int32_t)n_ids;
  return BITTTS_STREAM_OK;
}

bittts_stream_status bittts_durations(const bittts_stream_config *c,
                                      const float *log_durations, size_t log_durations_len,
                                      int32_t length, float scale, int32_t *durations,
                                      size_t durations_len, bittts_duration_info *info) {
  bittts_stream_status status;
  int32_t i, capped = 0;
  int64_t total = 0, final_total;
  float cap;
  if (c == NULL || log_durations == NULL || durations == NULL) return BITTTS_STREAM_NULL;
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  if (length < 1 || length > c->max_tokens) return BITTTS_STREAM_LENGTH;
  if (log_durations_len < (size_t)length || durations_len < (size_t)length)
    return BITTTS_STREAM_SIZE;
  if (!(scale >= BITTTS_DURATION_SCALE_MIN && scale <= BITTTS_DURATION_SCALE_MAX))
    return BITTTS_STREAM_SCALE;
  cap = (float)c->max_frames_per_token;
  for (i = 0; i < length; ++i)
    if (!isfinite(log_durations[i])) return BITTTS_STREAM_VALUE;
  for (i = 0; i < length; ++i) {
    /* As numpy: np.round(np.float32(scale) * (e - np.float32(1))) in float32;
     * np.round is round-half-even, which rintf is in the default rounding
     * mode. e is exp(d) correctly rounded to float32 (through double): libm
     * expf and numpy's SIMD float32 exp each miss it by an ulp or two on some
     * inputs, differently per library and CPU, while the double exp of glibc,
     * newlib or numpy rounded to float32 agrees everywhere but in
     * double-rounding cases (about 1 input in 2^28). Past the cap (even at
     * +inf) the cap is kept, so no float beyond int32 is ever converted. */
    const float e = (float)exp((double)log_durations[i]);
    const float frames = rintf(scale * (e - 1.0f));
    if (frames > cap) {
      durations[i] = c->max_frames_per_token;
      ++capped;
    } else {
      durations[i] = frames >= 1.0f ? (int32_t)frames : 1;
    }
    total += durations[i];
  }
  final_total = total;
  if (total > c->max_frames_per_segment) {
    /* numpy multiplies the int64 durations by the Python float max_total /
     * total: double arithmetic, then floor (a cast, as the product is >= 0). */
    const double ratio = (double)c->max_frames_per_segment / (double)total;
    final_total = 0;
    for (i = 0; i < length; ++i) {
      int32_t sped = (int32_t)((double)durations[i] * ratio);
      durations[i] = sped >= 1 ? sped : 1;
      final_total += durations[i];
    }
  }
  if (info != NULL) {
    info->total_frames = (int32_t)final_total;
    info->capped_tokens = capped;
    info->uncapped_total = total > c->max_frames_per_segment ? (int32_t)total : 0;
  }
  return BITTTS_STREAM_OK;
}

bittts_stream_status bittts_stream_begin(bittts_stream *s, const bittts_stream_config *c,
                                         const float *hidden, size_t hidden_len,
                                         const int32_t *durations, size_t n_tokens) {
  bittts_stream_status status;
  int64_t total = 0;
  size_t i;
  if (s == NULL || c == NULL || hidden == NULL || durations == NULL) return BITTTS_STREAM_NULL;
  s->magic = 0;
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  if (n_tokens < 1 || n_tokens > (size_t)c->max_tokens) return BITTTS_STREAM_LENGTH;
  if (hidden_len / (size_t)c->encoder_channels < n_tokens) return BITTTS_STREAM_SIZE;
  for (i = 0; i < n_tokens; ++i) {
    if (durations[i] < 1 || durations[i] > c->max_frames_per_token) return BITTTS_STREAM_VALUE;
    total += durations[i];
  }
  /* Windows index padded frames up to the last chunk's end plus both
   * contexts; all of it must count in int32. */
  if (!count_fits(total + c->chunk_frames + c->left_context + c->right_context))
    return BITTTS_STREAM_VALUE;
  s->config = *c;
  s->hidden = hidden;
  s->durations = durations;
  s->n_tokens = (int32_t)n_tokens;
  s->total_frames = (int32_t)total;
  s->n_chunks = (int32_t)((total + c->chunk_frames - 1) / c->chunk_frames);
  s->next_chunk = 0;
  s->cursor_token = 0;
  s->cursor_frame = 0;
  s->magic = kStreamMagic;
  return BITTTS_STREAM_OK;
}

int32_t bittts_stream_remaining(const bittts_stream *s) {
  if (s == NULL || s->magic != kStreamMagic) return 0;
  return s->n_chunks - s->next_chunk;
}

bittts_stream_status bittts_stream_window(bittts_stream *s, float *frames, size_t frames_len,
                                          float *mask, size_t mask_len,
                                          size_t *keep_samples) {
  const bittts_stream_config *c;
  size_t channels, row_bytes;
  int32_t window, chunk_start, first, stop, r, token, token_start, keep;
  if (s == NULL || frames == NULL || mask == NULL || keep_samples == NULL)
    return BITTTS_STREAM_NULL;
  if (s->magic != kStreamMagic || s->next_chunk >= s->n_chunks) return BITTTS_STREAM_STATE;
  c = &s->config;
  window = c->left_context + c->chunk_frames + c->right_context;
  channels = (size_t)c->encoder_channels;
  if (frames_len / channels < (size_t)window || mask_len < (size_t)window)
    return BITTTS_STREAM_SIZE;
  row_bytes = channels * sizeof *frames;
  /* Row r of the window is frame chunk_start + r - left_context of the
   * segment; rows before frame 0 and from total_frames on are padding. */
  chunk_start = s->next_chunk * c->chunk_frames;
  first = chunk_start - c->left_context;
  stop = first + window < s->total_frames ? first + window : s->total_frames;
  if (first > 0) {
    while (s->cursor_token < s->n_tokens - 1 &&
           s->cursor_frame + s->durations[s->cursor_token] <= first) {
      s->cursor_frame += s->durations[s->cursor_token];
      ++s->cursor_token;
    }
  }
  token = s->cursor_token;
  token_start = s->cursor_frame;
  for (r = 0; r < window; ++r) {
    const int32_t f = first + r;
    if (f < 0 || f >= stop) {
      memset(frames + (size_t)r * channels, 0, row_bytes);
      mask[r] = 0.0f;
      continue;
    }
    while (token < s->n_tokens - 1 && f >= token_start + s->durations[token]) {
      token_start += s->durations[token];
      ++token;
    }
    memcpy(frames + (size_t)r * channels, s->hidden + (size_t)token * channels, row_bytes);
    mask[r] = 1.0f;
  }
  keep = s->total_frames - chunk_start;
  if (keep > c->chunk_frames) keep = c->chunk_frames;
  *keep_samples = (size_t)keep * (size_t)c->hop_length;
  ++s->next_chunk;
  return BITTTS_STREAM_OK;
}

int16_t bittts_pcm16(float sample) {
  float v, z, frac;
  int64_t t;
  if (sample != sample) return 0; /* NaN: silence rather than a click */
  v = sample < -1.0f ? -1.0f : sample > 1.0f ? 1.0f : sample;
  /* libsndfile's path: int32 by round-half-even of v * 2^31 (exact, a power
   * of two), saturated, then the top 16 bits. Done in integers so a
   * Cortex-M4 needs no rintf call per sample: t and frac are exact because
   * z is a float whose integer part is one too. */
  z = v * BITTTS_PCM_INT32_SCALE;
  if (z >= BITTTS_PCM_INT32_SCALE) return 32767;
  t = (int64_t)z;
  frac = z - (float)t;
  if (frac > 0.5f || (frac == 0.5f && t % 2 != 0)) ++t;
  else if (frac < -0.5f || (frac == -0.5f && t % 2 != 0)) --t;
  /* Floor division: C's / truncates towards zero. */
  return (int16_t)(t >= 0 ? t >> BITTTS_PCM16_SHIFT
                          : -((-t + ((1 << BITTTS_PCM16_SHIFT) - 1)) >> BITTTS_PCM16_SHIFT));
}

static int send_pcm(const bittts_callbacks *cb, const float *audio, size_t n) {
  int16_t block[kPcm16Block];
  size_t i, done;
  if (cb->pcm_f32 != NULL && cb->pcm_f32(cb->user, audio, n) != 0) return 1;
  if (cb->pcm_i16 == NULL) return 0;
  for (done = 0; done < n; done += kPcm16Block) {
    const size_t m = n - done < kPcm16Block ? n - done : kPcm16Block;
    for (i = 0; i < m; ++i) block[i] = bittts_pcm16(audio[done + i]);
    if (cb->pcm_i16(cb->user, block, m) != 0) return 1;
  }
  return 0;
}

bittts_stream_status bittts_speak_segment(const bittts_stream_config *c, const float *hidden,
                                          size_t hidden_len, const float *log_durations,
                                          size_t log_durations_len, int32_t length,
                                          float duration_scale, int32_t *durations,
                                          size_t durations_len, float *frames,
                                          size_t frames_len, float *mask, size_t mask_len,
                                          const bittts_callbacks *cb,
                                          bittts_duration_info *info) {
  bittts_stream stream;
  bittts_stream_status status;
  if (cb == NULL || cb->run_frames == NULL || (cb->pcm_f32 == NULL && cb->pcm_i16 == NULL))
    return BITTTS_STREAM_NULL;
  status = bittts_durations(c, log_durations, log_durations_len, length, duration_scale,
                            durations, durations_len, info);
  if (status != BITTTS_STREAM_OK) return status;
  status = bittts_stream_begin(&stream, c, hidden, hidden_len, durations, (size_t)length);
  if (status != BITTTS_STREAM_OK) return status;
  while (bittts_stream_remaining(&stream) > 0) {
    const float *audio = NULL;
    size_t audio_len = 0, keep = 0;
    status = bittts_stream_window(&stream, frames, frames_len, mask, mask_len, &keep);
    if (status != BITTTS_STREAM_OK) return status;
    if (cb->run_frames(cb->user, frames, mask, &audio, &audio_len) != 0)
      return BITTTS_STREAM_CALLBACK;
    if (audio == NULL) return BITTTS_STREAM_NULL;
    if (audio_len != (size_t)c->chunk_frames * (size_t)c->hop_length) return BITTTS_STREAM_SIZE;
    if (send_pcm(cb, audio, keep) != 0) return BITTTS_STREAM_CALLBACK;
  }
  return BITTTS_STREAM_OK;
}

uint32_t bittts_crc32(uint32_t crc, const uint8_t *data, size_t len) {
  static const uint32_t table[16] = BITTTS_CRC32_NIBBLE_TABLE;
  size_t i;
  if (data == NULL) return crc;
  crc = ~crc;
  for (i = 0; i < len; ++i) {
    crc ^= data[i];
    crc = (crc >> 4) ^ table[crc & 15u];
    crc = (crc >> 4) ^ table[crc & 15u];
  }
  return ~crc;
}

bittts_stream_status bittts_check_model(const uint8_t *data, size_t len, size_t expected_len,
                                        uint32_t expected_crc32) {
  uint32_t root;
  if (data == NULL) return BITTTS_STREAM_NULL;
  if (len != expected_len || len < 8) return BITTTS_STREAM_MODEL;
  if (memcmp(data + 4, BITTTS_TFLITE_IDENTIFIER, 4) != 0) return BITTTS_STREAM_MODEL;
  root = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
         (uint32_t)data[3] << 24;
  if (root < 8 || root > len - 4) return BITTTS_STREAM_MODEL;
  if (bittts_crc32(0, data, len) != expected_crc32) return BITTTS_STREAM_MODEL;
  return BITTTS_STREAM_OK;
}
