/* Between the two TFLite graphs of an exported TTS model: phoneme ids into
 * the text graph's input, log-durations into frames per phoneme (the Python
 * runtime's arithmetic, bit for bit), and the frames graph's input windows,
 * chunk by chunk, with each chunk's samples handed to a callback.
 *
 * Plain C99 that knows nothing of TFLite Micro: the interpreters run behind
 * callbacks, so this builds and is tested on any host and on Cortex-M. No heap
 * and no static state: every buffer comes from the caller with its length,
 * and every length is checked before anything is written. */
#ifndef BITTTS_STREAM_H_
#define BITTTS_STREAM_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_stream_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *bittts_stream_status_message(bittts_stream_status status);

/* BITTTS_STREAM_OK when every field is in range and every buffer size the
 * config implies fits in size_t and int32. */
bittts_stream_status bittts_check_config(const bittts_stream_config *config);

/* Frames-graph window: left_context + chunk_frames + right_context frames
 * (0 for a config bittts_check_config refuses). */
size_t bittts_window_frames(const bittts_stream_config *config);

/* Text-graph input: ids[0..n_ids) copied into phonemes[0..max_tokens), the rest
 * zero, *length = n_ids. n_ids must be 1..max_tokens and every id in
 * 0..num_symbols-1 (BITTTS_STREAM_LENGTH / BITTTS_STREAM_ID otherwise). */
bittts_stream_status bittts_text_input(const bittts_stream_config *config,
                                       const int32_t *ids, size_t n_ids,
                                       int32_t *phonemes, size_t phonemes_len,
                                       int32_t *length);

/* Frames per phoneme from the text graph's log-durations, as the Python
 * runtime's regulate_durations: round-half-even of scale * (e - 1) in
 * float32, e = exp(d) rounded to float32, at least 1, then the per-phoneme cap,
 * then, over the segment cap, floor(d * (max_total / total)) in double, at
 * least 1. Reads log_durations[0..length), writes durations[0..length).
 * info may be NULL. */
bittts_stream_status bittts_durations(const bittts_stream_config *config,
                                      const float *log_durations, size_t log_durations_len,
                                      int32_t length, float duration_scale,
                                      int32_t *durations, size_t durations_len,
                                      bittts_duration_info *info);

/* A segment's walk through the frames graph. Fields are private; the record
 * lives wherever the caller puts it (stack, static). */
typedef struct {
  bittts_stream_config config;
  const float *hidden;
  const int32_t *durations;
  int32_t n_tokens;
  int32_t total_frames;
  int32_t n_chunks;
  int32_t next_chunk;
  /* The phoneme holding the first frame of the next window and that
   * phoneme's first frame: windows only move forward. */
  int32_t cursor_token;
  int32_t cursor_frame;
  uint32_t magic;
} bittts_stream;

/* hidden: the text graph's encoder states, n_tokens rows of encoder_channels
 * floats (hidden_len >= n_tokens * encoder_channels); it must stay valid until
 * the last window is built (it may be the text interpreter's output tensor).
 * durations: n_tokens values, each 1..max_frames_per_token, read again at
 * every window (keep them unchanged until the last one). */
bittts_stream_status bittts_stream_begin(bittts_stream *stream,
                                         const bittts_stream_config *config,
                                         const float *hidden, size_t hidden_len,
                                         const int32_t *durations, size_t n_tokens);

/* Chunks not yet built. */
int32_t bittts_stream_remaining(const bittts_stream *stream);

/* Builds the next chunk's window: frames[window * encoder_channels] and
 * mask[window] (the frames graph's two inputs; they may be its input tensors),
 * zero rows and mask 0 outside the segment. *keep_samples is how many of the
 * chunk's chunk_frames * hop_length samples belong to the segment (fewer in
 * the last chunk). BITTTS_STREAM_STATE after the last chunk. */
bittts_stream_status bittts_stream_window(bittts_stream *stream, float *frames,
                                          size_t frames_len, float *mask, size_t mask_len,
                                          size_t *keep_samples);

/* The samples as tools/speak.py's 16-bit wav holds them. */
int16_t bittts_pcm16(float sample);

/* Callbacks return 0 to go on; anything else stops with BITTTS_STREAM_CALLBACK. */
typedef struct {
  void *user;
  /* Runs the frames graph on the window just built in frames / mask and
   * points *audio at its samples output (e.g. the output tensor's data);
   * *audio_len must be chunk_frames * hop_length. */
  int (*run_frames)(void *user, const float *frames, const float *mask,
                    const float **audio, size_t *audio_len);
  /* Exactly one of the two receives the samples of each chunk. */
  int (*pcm_f32)(void *user, const float *samples, size_t n);
  int (*pcm_i16)(void *user, const int16_t *samples, size_t n);
} bittts_callbacks;

/* One segment end to end after the text graph: durations into
 * durations[0..length), then every chunk through run_frames, its samples to
 * the PCM callback. hidden / log_durations are the text graph's outputs
 * (max_tokens rows each at least). info may be NULL. */
bittts_stream_status bittts_speak_segment(const bittts_stream_config *config,
                                          const float *hidden, size_t hidden_len,
                                          const float *log_durations,
                                          size_t log_durations_len, int32_t length,
                                          float duration_scale, int32_t *durations,
                                          size_t durations_len, float *frames,
                                          size_t frames_len, float *mask, size_t mask_len,
                                          const bittts_callbacks *callbacks,
                                          bittts_duration_info *info);

/* A model array as tools/firmware.py wrote it: len equals expected_len, the
 * .tflite identifier is in place, the root table offset lies inside, and the
 * CRC-32 (zlib's) matches. TFLite Micro reads a flatbuffer without checking
 * it, so a truncated or corrupt flash image must be caught before. */
bittts_stream_status bittts_check_model(const uint8_t *data, size_t len,
                                        size_t expected_len, uint32_t expected_crc32);

/* zlib's CRC-32 (reflected polynomial 0xEDB88320), continuing from crc. */
uint32_t bittts_crc32(uint32_t crc, const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_STREAM_H_ */
