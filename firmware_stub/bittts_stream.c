#include "bittts_stream.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Durations and int8 codes must round exactly as numpy does in float32:
 * wider evaluation or fast-math would move the ties. */
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

static int positive_finite(float v) { return isfinite(v) && v > 0.0f; }

/* A checked config's: its vocoder has a source phase. */
static int has_source(const bittts_stream_config *c) { return c->source_cutoff > 0.0f; }

bittts_stream_status bittts_check_config(const bittts_stream_config *c) {
  int32_t i;
  if (c == NULL) return BITTTS_STREAM_NULL;
  if (c->max_tokens < 1 || c->num_symbols < 1 || c->encoder_channels < 1 ||
      c->hop_length < 1 || c->max_frames_per_token < 1 ||
      c->max_frames_per_token > BITTTS_MAX_FRAMES_LIMIT || c->max_frames_per_segment < 1 ||
      c->max_frames_per_segment > BITTTS_MAX_FRAMES_LIMIT || c->step < 1 || c->delay < 0 ||
      c->num_states < 0 || c->num_states > BITTTS_MAX_STATES)
    return BITTTS_STREAM_CONFIG;
  /* The inverse STFT's limits; then n_fft <= BITTTS_ISTFT_N_FFT, so n_fft + 2
   * cannot overflow. */
  if (bittts_istft_check(c->n_fft, c->hop_length) != BITTTS_ISTFT_OK ||
      c->head_width != c->n_fft + 2)
    return BITTTS_STREAM_CONFIG;
  for (i = 0; i < BITTTS_MAX_STATES; ++i) {
    if (i < c->num_states ? c->state_frames[i] < 0 || c->state_channels[i] < 1 ||
                                !count_fits((int64_t)c->state_frames[i] * c->state_channels[i])
                          : c->state_frames[i] != 0 || c->state_channels[i] != 0)
      return BITTTS_STREAM_CONFIG;
  }
  /* Without a source phase every source field is 0 (a half-set source is a
   * config gone wrong, not a choice); with one, each is as
   * bittts_istft_source_phase wants it, so no row is refused for its config. */
  if (c->source_cutoff == 0.0f
          ? c->source_sample_rate != 0.0f || c->source_log_f0_mean != 0.0f ||
                c->source_log_f0_std != 0.0f
          : !(positive_finite(c->source_cutoff) && positive_finite(c->source_sample_rate) &&
              positive_finite(c->source_log_f0_std) && isfinite(c->source_log_f0_mean)))
    return BITTTS_STREAM_CONFIG;
  /* The uncapped total, the capped total (at most the segment cap plus one
   * frame a phoneme) with the delay and a step of padding, and every buffer
   * must count in int32. */
  if (!count_fits((int64_t)c->max_tokens * c->max_frames_per_token) ||
      !count_fits((int64_t)c->max_frames_per_segment + c->max_tokens + c->delay + c->step) ||
      !count_fits((int64_t)c->max_tokens * c->encoder_channels) ||
      !count_fits((int64_t)c->step * c->encoder_channels) ||
      !count_fits((int64_t)c->step * c->head_width))
    return BITTTS_STREAM_CONFIG;
  return BITTTS_STREAM_OK;
}

size_t bittts_stream_work_len(const bittts_stream_config *c, int32_t int8) {
  if (bittts_check_config(c) != BITTTS_STREAM_OK) return 0;
  return bittts_istft_state_len(c->n_fft, c->hop_length) + bittts_istft_scratch_len(c->n_fft) +
         (size_t)c->hop_length + (int8 || has_source(c) ? (size_t)c->head_width : 0);
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

static int quant_ok(bittts_quant q) {
  return isfinite(q.scale) && q.scale > 0.0f && q.zero_point >= -128 && q.zero_point <= 127;
}

/* The frames graph's buffers against a checked config; the work buffer's
 * length too. */
static bittts_stream_status check_io(const bittts_stream_config *c, const bittts_frames_io *io,
                                     size_t work_len) {
  size_t i;
  if (io->frames == NULL || io->mask == NULL || (c->num_states > 0 && io->states == NULL))
    return BITTTS_STREAM_NULL;
  if (io->int8 != 0 && io->int8 != 1) return BITTTS_STREAM_QUANT;
  if (io->frames_len / (size_t)c->encoder_channels < (size_t)c->step ||
      io->mask_len < (size_t)c->step || io->n_states != (size_t)c->num_states ||
      work_len < bittts_stream_work_len(c, io->int8))
    return BITTTS_STREAM_SIZE;
  for (i = 0; i < io->n_states; ++i) {
    const bittts_state_slot *slot = &io->states[i];
    if (slot->len != (size_t)c->state_frames[i] * (size_t)c->state_channels[i])
      return BITTTS_STREAM_SIZE;
    if (slot->len > 0 && (slot->input == NULL || slot->output == NULL))
      return BITTTS_STREAM_NULL;
    if (io->int8 && (slot->zero_point < -128 || slot->zero_point > 127))
      return BITTTS_STREAM_QUANT;
  }
  if (io->int8 &&
      !(quant_ok(io->frames_quant) && quant_ok(io->mask_quant) && quant_ok(io->spectrum_quant)))
    return BITTTS_STREAM_QUANT;
  /* A frame F0 where the config has no source phase (or none where it has
   * one) is a config made for another graph: its phases would be lost. */
  if (has_source(c)) {
    if (io->frame_f0 == NULL) return BITTTS_STREAM_NULL;
    if (io->frame_f0_len != (size_t)c->step * 2) return BITTTS_STREAM_SIZE;
    if (io->int8 && !quant_ok(io->frame_f0_quant)) return BITTTS_STREAM_QUANT;
  } else if (io->frame_f0 != NULL || io->frame_f0_len != 0) {
    return BITTTS_STREAM_SIZE;
  }
  return BITTTS_STREAM_OK;
}

bittts_stream_status bittts_check_frames_io(const bittts_stream_config *c,
                                            const bittts_frames_io *io, size_t work_len) {
  bittts_stream_status status;
  if (c == NULL || io == NULL) return BITTTS_STREAM_NULL;
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  return check_io(c, io, work_len);
}

/* Everything bittts_stream_begin checks but the durations. */
static bittts_stream_status check_segment(const bittts_stream_config *c, size_t hidden_len,
                                          size_t n_tokens, const bittts_frames_io *io,
                                          size_t work_len) {
  bittts_stream_status status;
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  if (n_tokens < 1 || n_tokens > (size_t)c->max_tokens) return BITTTS_STREAM_LENGTH;
  if (hidden_len / (size_t)c->encoder_channels < n_tokens) return BITTTS_STREAM_SIZE;
  return check_io(c, io, work_len);
}

/* The rows as floats (hidden) or as codes; the other is NULL, so both NULL
 * is a missing pointer. */
static bittts_stream_status begin(bittts_stream *s, const bittts_stream_config *c,
                                  const float *hidden, const int8_t *codes, size_t hidden_len,
                                  const int32_t *durations, size_t n_tokens,
                                  const bittts_frames_io *io, float *work, size_t work_len) {
  bittts_stream_status status;
  int64_t total = 0;
  size_t i, istft_len;
  if (s == NULL) return BITTTS_STREAM_NULL;
  /* A refused begin leaves no stream behind, not even the one before. */
  s->magic = 0;
  if (c == NULL || (hidden == NULL && codes == NULL) || durations == NULL || io == NULL ||
      work == NULL)
    return BITTTS_STREAM_NULL;
  status = check_segment(c, hidden_len, n_tokens, io, work_len);
  if (status != BITTTS_STREAM_OK) return status;
  /* Codes are the int8 frames input's: a float graph has none. */
  if (codes != NULL && io->int8 != 1) return BITTTS_STREAM_QUANT;
  for (i = 0; i < n_tokens; ++i) {
    if (durations[i] < 1 || durations[i] > c->max_frames_per_token) return BITTTS_STREAM_VALUE;
    total += durations[i];
  }
  /* The walk reaches frame total + delay + step - 1 (padding): all of it
   * must count in int32. */
  if (!count_fits(total + c->delay + c->step)) return BITTTS_STREAM_VALUE;
  istft_len = bittts_istft_state_len(c->n_fft, c->hop_length);
  if (bittts_istft_begin(&s->istft, c->n_fft, c->hop_length, work, istft_len) !=
      BITTTS_ISTFT_OK)
    return BITTTS_STREAM_CONFIG; /* not reached: the config was checked */
  s->config = c;
  s->io = *io;
  s->hidden = hidden;
  s->codes = codes;
  s->durations = durations;
  s->scratch = work + istft_len;
  s->out = s->scratch + c->n_fft;
  s->row = s->out + c->hop_length;
  s->source.sample_rate = c->source_sample_rate;
  s->source.cutoff = c->source_cutoff;
  s->source.log_f0_mean = c->source_log_f0_mean;
  s->source.log_f0_std = c->source_log_f0_std;
  s->theta = 0.0f;
  s->n_tokens = (int32_t)n_tokens;
  s->total_frames = (int32_t)total;
  s->n_invokes = (int32_t)((total + c->delay + c->step - 1) / c->step);
  s->next_invoke = 0;
  s->cursor_token = 0;
  s->cursor_frame = 0;
  s->magic = kStreamMagic;
  return BITTTS_STREAM_OK;
}

bittts_stream_status bittts_stream_begin(bittts_stream *s, const bittts_stream_config *c,
                                         const float *hidden, size_t hidden_len,
                                         const int32_t *durations, size_t n_tokens,
                                         const bittts_frames_io *io, float *work,
                                         size_t work_len) {
  return begin(s, c, hidden, NULL, hidden_len, durations, n_tokens, io, work, work_len);
}

bittts_stream_status bittts_stream_begin_codes(bittts_stream *s, const bittts_stream_config *c,
                                               const int8_t *codes, size_t codes_len,
                                               const int32_t *durations, size_t n_tokens,
                                               const bittts_frames_io *io, float *work,
                                               size_t work_len) {
  return begin(s, c, NULL, codes, codes_len, durations, n_tokens, io, work, work_len);
}

int32_t bittts_stream_remaining(const bittts_stream *s) {
  if (s == NULL || s->magic != kStreamMagic) return 0;
  return s->n_invokes - s->next_invoke;
}

/* As numpy: clip(round(x / scale) + zero_point, -128, 127) in float32, round
 * half to even (rintf in the default rounding mode). NaN, which numpy would
 * cast to an unspecified code, becomes the zero point. */
static int8_t quantize(float x, bittts_quant q) {
  float v;
  if (x != x) return (int8_t)q.zero_point;
  v = rintf(x / q.scale) + (float)q.zero_point;
  if (v < -128.0f) return -128;
  if (v > 127.0f) return 127;
  return (int8_t)v;
}

bittts_stream_status bittts_hidden_codes(const float *hidden, size_t n, bittts_quant q,
                                         int8_t *codes, size_t codes_len) {
  const uintptr_t from = (uintptr_t)hidden, to = (uintptr_t)codes;
  size_t i;
  if (hidden == NULL || codes == NULL) return BITTTS_STREAM_NULL;
  if (codes_len < n || n > SIZE_MAX / sizeof *hidden) return BITTTS_STREAM_SIZE;
  if (!quant_ok(q)) return BITTTS_STREAM_QUANT;
  /* From at or before hidden's start, code i lands on the bytes of a float
   * j <= i / 4, read already (float i just before code i is written). */
  if (to > from && to < from + n * sizeof *hidden) return BITTTS_STREAM_SIZE;
  for (i = 0; i < n; ++i) codes[i] = quantize(hidden[i], q);
  return BITTTS_STREAM_OK;
}

/* Writes row r of the frames input (token `token`'s row, or zeros when it
 * is negative) and its mask. */
static void write_frame(const bittts_stream *s, int32_t r, int32_t token, float mask) {
  const bittts_frames_io *io = &s->io;
  const size_t channels = (size_t)s->config->encoder_channels, at = (size_t)r * channels;
  const float *row = token >= 0 && s->hidden != NULL ? s->hidden + (size_t)token * channels : NULL;
  size_t i;
  if (io->int8) {
    int8_t *frames = (int8_t *)io->frames + at;
    if (token >= 0 && s->codes != NULL) {
      memcpy(frames, s->codes + (size_t)token * channels, channels);
    } else {
      for (i = 0; i < channels; ++i) frames[i] = quantize(row != NULL ? row[i] : 0.0f,
                                                          io->frames_quant);
    }
    ((int8_t *)io->mask)[r] = quantize(mask, io->mask_quant);
  } else {
    float *frames = (float *)io->frames + at;
    if (row != NULL) memcpy(frames, row, channels * sizeof *frames);
    else memset(frames, 0, channels * sizeof *frames);
    ((float *)io->mask)[r] = mask;
  }
}

/* Every input of invoke k: frames k * step .. k * step + step - 1 (zero rows
 * with mask 0 from total_frames on), and the states. */
static void write_inputs(bittts_stream *s, int32_t k) {
  const bittts_stream_config *c = s->config;
  const int32_t first = k * c->step;
  const size_t size = s->io.int8 ? sizeof(int8_t) : sizeof(float);
  int32_t r;
  size_t i;
  for (r = 0; r < c->step; ++r) {
    const int32_t f = first + r;
    if (f >= s->total_frames) {
      write_frame(s, r, -1, 0.0f);
      continue;
    }
    while (s->cursor_token < s->n_tokens - 1 &&
           f >= s->cursor_frame + s->durations[s->cursor_token]) {
      s->cursor_frame += s->durations[s->cursor_token];
      ++s->cursor_token;
    }
    write_frame(s, r, s->cursor_token, 1.0f);
  }
  /* A segment starts from zero states (int8: the zero point's code, as the
   * runtime's GraphRunner.zero); later invokes get the previous one's. */
  for (i = 0; i < s->io.n_states; ++i) {
    const bittts_state_slot *slot = &s->io.states[i];
    if (slot->len == 0) continue;
    if (k > 0) memmove(slot->input, slot->output, slot->len * size);
    else if (s->io.int8) memset(slot->input, (int8_t)slot->zero_point, slot->len);
    else memset(slot->input, 0, slot->len * size); /* all bits zero: +0.0f */
  }
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

/* As the runtime: (code - zero_point) * scale in float32. */
static void dequantize(const int8_t *codes, size_t n, bittts_quant q, float *out) {
  size_t i;
  for (i = 0; i < n; ++i) out[i] = ((float)codes[i] - (float)q.zero_point) * q.scale;
}

/* Invoke k after its inputs are written: the graph, then the rows of frames
 * 0 .. total_frames - 1 into the inverse STFT, then (last invoke) its flushes. */
static bittts_stream_status run_invoke(bittts_stream *s, int32_t k, const bittts_callbacks *cb) {
  const bittts_stream_config *c = s->config;
  const size_t width = (size_t)c->head_width, hop = (size_t)c->hop_length;
  const void *spectrum = NULL;
  size_t spectrum_len = 0, n_out;
  /* The frame of this invoke's first spectrum row. */
  const int32_t first = k * c->step - c->delay;
  int32_t j, flushes;
  if (cb->run_frames(cb->user, s->io.frames, s->io.mask, &spectrum, &spectrum_len) != 0)
    return BITTTS_STREAM_CALLBACK;
  if (spectrum == NULL) return BITTTS_STREAM_NULL;
  if (spectrum_len != (size_t)c->step * width) return BITTTS_STREAM_SIZE;
  for (j = 0; j < c->step; ++j) {
    const float *row;
    if (first + j < 0 || first + j >= s->total_frames) continue;
    if (s->io.int8) {
      dequantize((const int8_t *)spectrum + (size_t)j * width, width, s->io.spectrum_quant,
                 s->row);
      row = s->row;
    } else if (has_source(c)) {
      /* The graph's output is read-only: the phases change in a copy. */
      memcpy(s->row, (const float *)spectrum + (size_t)j * width, width * sizeof *s->row);
      row = s->row;
    } else {
      row = (const float *)spectrum + (size_t)j * width;
    }
    if (has_source(c)) {
      float f0[2];
      if (s->io.int8) dequantize((const int8_t *)s->io.frame_f0 + 2 * (size_t)j, 2,
                                 s->io.frame_f0_quant, f0);
      else memcpy(f0, (const float *)s->io.frame_f0 + 2 * (size_t)j, sizeof f0);
      if (bittts_istft_source_phase(s->row, width, c->n_fft, c->hop_length, f0, 2, &s->source,
                                    &s->theta) != BITTTS_ISTFT_OK)
        return BITTTS_STREAM_SPECTRUM;
    }
    if (bittts_istft_push(&s->istft, row, width, 1.0f, s->scratch, (size_t)c->n_fft, s->out,
                          hop, &n_out) != BITTTS_ISTFT_OK)
      return BITTTS_STREAM_SPECTRUM;
    if (n_out > 0 && send_pcm(cb, s->out, n_out) != 0) return BITTTS_STREAM_CALLBACK;
  }
  if (k == s->n_invokes - 1) {
    for (flushes = bittts_istft_delay_frames(c->n_fft, c->hop_length); flushes > 0; --flushes) {
      if (bittts_istft_flush(&s->istft, s->out, hop, &n_out) != BITTTS_ISTFT_OK)
        return BITTTS_STREAM_STATE; /* not reached: the record is the stream's */
      if (n_out > 0 && send_pcm(cb, s->out, n_out) != 0) return BITTTS_STREAM_CALLBACK;
    }
  }
  return BITTTS_STREAM_OK;
}

bittts_stream_status bittts_stream_step(bittts_stream *s, const bittts_callbacks *cb) {
  bittts_stream_status status;
  int32_t k;
  if (s == NULL || cb == NULL || cb->run_frames == NULL ||
      (cb->pcm_f32 == NULL && cb->pcm_i16 == NULL))
    return BITTTS_STREAM_NULL;
  if (s->magic != kStreamMagic || s->next_invoke >= s->n_invokes) return BITTTS_STREAM_STATE;
  k = s->next_invoke;
  write_inputs(s, k);
  status = run_invoke(s, k, cb);
  if (status != BITTTS_STREAM_OK) {
    /* The graph's states and the inverse STFT have moved on: no retry. */
    s->magic = 0;
    return status;
  }
  ++s->next_invoke;
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

bittts_stream_status bittts_speak_segment(const bittts_stream_config *c, const float *hidden,
                                          size_t hidden_len, const float *log_durations,
                                          size_t log_durations_len, int32_t length,
                                          float duration_scale, int32_t *durations,
                                          size_t durations_len, const bittts_frames_io *io,
                                          float *work, size_t work_len,
                                          const bittts_callbacks *cb,
                                          bittts_duration_info *info) {
  bittts_stream stream;
  bittts_stream_status status;
  if (cb == NULL || cb->run_frames == NULL || (cb->pcm_f32 == NULL && cb->pcm_i16 == NULL) ||
      c == NULL || hidden == NULL || log_durations == NULL || durations == NULL || io == NULL ||
      work == NULL)
    return BITTTS_STREAM_NULL;
  /* All but the log-durations (bittts_durations checks them) before
   * durations are written. */
  if ((status = bittts_check_config(c)) != BITTTS_STREAM_OK) return status;
  if (length < 1 || length > c->max_tokens) return BITTTS_STREAM_LENGTH;
  status = check_segment(c, hidden_len, (size_t)length, io, work_len);
  if (status != BITTTS_STREAM_OK) return status;
  status = bittts_durations(c, log_durations, log_durations_len, length, duration_scale,
                            durations, durations_len, info);
  if (status != BITTTS_STREAM_OK) return status;
  status = bittts_stream_begin(&stream, c, hidden, hidden_len, durations, (size_t)length, io,
                               work, work_len);
  while (status == BITTTS_STREAM_OK && bittts_stream_remaining(&stream) > 0)
    status = bittts_stream_step(&stream, cb);
  return status;
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
