/* Between and after the two TFLite graphs of an exported TTS model: phoneme
 * ids into the text graph's input, log-durations into frames per phoneme
 * (the Python runtime's arithmetic, bit for bit), then the frames graph's
 * stream: `step` regulated frames and their mask into each invoke, the
 * conv states carried from one invoke to the next, the spectrum rows of the
 * segment's frames into the inverse STFT (bittts_istft.h), its samples to a
 * PCM callback.
 *
 * A segment of T regulated frames is ceil((T + delay) / step) invokes: the
 * spectrum rows lag the input by `delay` frames, so the last invokes are fed
 * zero frames with mask 0 until row T - 1 has come out. Only the rows of
 * frames 0 .. T-1 go to the inverse STFT, T pushes and then its flushes,
 * which give exactly T * hop_length samples: what the Python runtime's
 * TextToSpeech.frame_chunks does (bittts_tf/runtime/tts.py, stream.py).
 *
 * Plain C99 that knows nothing of TFLite Micro: the frames graph runs behind
 * a callback, so this builds and is tested on any host and on Cortex-M. No
 * heap and no static mutable state: every buffer comes from the caller with
 * its length, every length and value is checked before anything is written,
 * and a refused call writes nothing (but for the record of a refused
 * bittts_stream_begin, which is left unusable). */
#ifndef BITTTS_STREAM_H_
#define BITTTS_STREAM_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_istft.h"
#include "bittts_stream_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *bittts_stream_status_message(bittts_stream_status status);

/* BITTTS_STREAM_OK when every field is in range (n_fft and hop_length as
 * bittts_istft_check wants them, head_width = n_fft + 2, num_states states
 * of 0 or more frames and 1 or more channels, the entries past num_states
 * 0; the source fields all 0, or, for a source-phase vocoder, a sample
 * rate, cut-off and log-F0 deviation positive and finite and a finite
 * log-F0 mean) and every buffer size the config implies fits in size_t and
 * int32. */
bittts_stream_status bittts_check_config(const bittts_stream_config *config);

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

/* ---- the frames graph's tensors ------------------------------------------
 *
 * A stream's tensors are all float32 (the model folder's packed and float32
 * variants) or all int8 (its int8 variant). An int8 tensor holds codes q of
 * the values scale * (q - zero_point), its TFLite quantization parameters.
 * The stream converts as the Python runtime's GraphRunner does, in float32:
 * an input value x becomes clamp(rint(x / scale) + zero_point, -128, 127)
 * (round half to even; NaN becomes the zero point), a spectrum code q the
 * value (q - zero_point) * scale. States stay codes: a state leaves the graph
 * and comes back with the same parameters (the exporter makes them equal;
 * tools/firmware.py checks it).
 *
 * A source-phase vocoder's graph (config->source_cutoff > 0) also emits
 * frame_f0, each spectrum row's standardized log-F0 and voicing logit (2
 * values a row, dequantized as the spectrum is): before a row goes into the
 * inverse STFT, its low bins' phases take the source phase of that frame F0
 * (bittts_istft_source_phase), its integrated F0 carried from row to row and
 * 0 at a segment's start, as the Python runtime's IstftStream does. */
typedef struct {
  float scale;
  int32_t zero_point;
} bittts_quant;

/* One state, state_NN: the graph's input and output tensors of that name. */
typedef struct {
  void *input;          /* the input's data (float or int8_t), len values */
  const void *output;   /* the output's data, len values */
  size_t len;           /* values in each: state_frames[NN] * state_channels[NN] */
  int32_t zero_point;   /* int8: the input's zero point, the code of a zero state */
} bittts_state_slot;

/* Where the stream reads and writes the frames graph: its input tensors'
 * data (e.g. TfLiteTensor::data.data) and, for an int8 graph, the
 * quantization parameters. Before each invoke the stream writes frames,
 * mask and every state input (zero before a segment's first invoke, the
 * previous invoke's output state after); it reads the spectrum from the
 * pointer run_frames returns. */
typedef struct {
  void *frames;             /* step * encoder_channels values */
  size_t frames_len;
  void *mask;               /* step values */
  size_t mask_len;
  int32_t int8;             /* 0: float32 tensors; 1: int8 tensors */
  bittts_quant frames_quant;    /* int8 only: the frames input's parameters */
  bittts_quant mask_quant;      /* int8 only: the mask input's */
  bittts_quant spectrum_quant;  /* int8 only: the spectrum output's */
  bittts_state_slot *states;    /* num_states slots, state_00 first */
  size_t n_states;
  /* Source phase only (NULL and 0 otherwise, and then not read): the
   * frame_f0 output's data, step * 2 values, which run_frames leaves there
   * as it does the output states; int8: its parameters. */
  const void *frame_f0;
  size_t frame_f0_len;
  bittts_quant frame_f0_quant;
} bittts_frames_io;

/* Floats of the work buffer a stream needs: the inverse STFT's state and
 * scratch, one hop of samples and, for int8 (int8 != 0) or a source phase,
 * one spectrum row (dequantized, or a copy whose phases change) (0 for a
 * config bittts_check_config refuses). */
size_t bittts_stream_work_len(const bittts_stream_config *config, int32_t int8);

/* What bittts_stream_begin checks of the config, the frames graph's io and
 * the work buffer's length (work_len floats), for a caller that would
 * rather know before it runs the text graph. */
bittts_stream_status bittts_check_frames_io(const bittts_stream_config *config,
                                            const bittts_frames_io *io, size_t work_len);

/* Callbacks return 0 to go on; anything else stops with BITTTS_STREAM_CALLBACK. */
typedef struct {
  void *user;
  /* Runs the frames graph once on its inputs (frames and mask are the io's
   * buffers, just written, as are the state inputs) and points *spectrum at
   * its spectrum output: step rows of head_width float32 values, or int8
   * codes for an int8 io; *spectrum_len must be step * head_width. The
   * output states must be in the slots' outputs when it returns, and stay
   * there until the next invoke (TFLite Micro's output tensors do). */
  int (*run_frames)(void *user, const void *frames, const void *mask, const void **spectrum,
                    size_t *spectrum_len);
  /* One of the two, or both, receive the samples as the inverse STFT puts
   * them out: pcm_f32 hop_length samples at a time, pcm_i16 in blocks of at
   * most 128. */
  int (*pcm_f32)(void *user, const float *samples, size_t n);
  int (*pcm_i16)(void *user, const int16_t *samples, size_t n);
} bittts_callbacks;

/* A segment's walk through the frames graph. Fields are private; the record
 * lives wherever the caller puts it (stack, static). */
typedef struct {
  const bittts_stream_config *config;
  bittts_frames_io io;
  const float *hidden;   /* the rows as floats, quantized per frame, */
  const int8_t *codes;   /* or (bittts_stream_begin_codes) as int8 codes, copied */
  const int32_t *durations;
  float *scratch; /* in the work buffer: the inverse STFT's scratch, */
  float *out;     /* one hop of samples, */
  float *row;     /* a spectrum row, dequantized (int8) or copied (source phase) */
  bittts_istft istft;
  bittts_istft_source source; /* the config's source fields */
  float theta;                /* the source phase's integrated F0 */
  int32_t n_tokens;
  int32_t total_frames;
  int32_t n_invokes;
  int32_t next_invoke;
  /* The phoneme holding the next input frame, and that phoneme's first
   * frame: the walk only moves forward. */
  int32_t cursor_token;
  int32_t cursor_frame;
  uint32_t magic;
} bittts_stream;

/* Starts a segment. hidden: the text graph's encoder states, n_tokens rows
 * of encoder_channels floats (hidden_len >= n_tokens * encoder_channels; it
 * may be the text interpreter's output tensor). durations: n_tokens values,
 * each 1..max_frames_per_token. config, hidden, durations and io->states
 * must stay valid and unchanged until the segment's last step; io is
 * copied. work: bittts_stream_work_len(config, io->int8) floats at least,
 * the stream's until then. No two buffers may overlap. */
bittts_stream_status bittts_stream_begin(bittts_stream *stream,
                                         const bittts_stream_config *config,
                                         const float *hidden, size_t hidden_len,
                                         const int32_t *durations, size_t n_tokens,
                                         const bittts_frames_io *io, float *work,
                                         size_t work_len);

/* The encoder states as an int8 frames input holds them: codes[i] is
 * hidden[i] quantized with q (round half to even, clipped), the code every
 * frame of that token gets. codes may start at or before hidden's first
 * byte (in place over the floats) or lie apart from them; codes starting
 * inside the floats are BITTTS_STREAM_SIZE. For a board whose text graph's float
 * hidden output would otherwise stay in RAM while the frames graph streams:
 * a quarter of its bytes, and each token quantized once, not once a frame. */
bittts_stream_status bittts_hidden_codes(const float *hidden, size_t n, bittts_quant q,
                                         int8_t *codes, size_t codes_len);

/* bittts_stream_begin for an int8 io (io->int8 == 1) whose hidden rows are
 * codes of io->frames_quant (bittts_hidden_codes): each frame row is copied.
 * The samples are the same as bittts_stream_begin's from the floats. */
bittts_stream_status bittts_stream_begin_codes(bittts_stream *stream,
                                               const bittts_stream_config *config,
                                               const int8_t *codes, size_t codes_len,
                                               const int32_t *durations, size_t n_tokens,
                                               const bittts_frames_io *io, float *work,
                                               size_t work_len);

/* Invokes not yet run (0 for a record that is finished or not begun). */
int32_t bittts_stream_remaining(const bittts_stream *stream);

/* One invoke: writes the frames graph's inputs, calls run_frames, pushes the
 * rows of the segment's frames into the inverse STFT and their samples to
 * the PCM callbacks; the last step also flushes the inverse STFT's last
 * samples. A step that fails after it has begun writing (a callback's
 * failure, a spectrum of the wrong length or one the inverse STFT refuses)
 * ends the stream: further steps return BITTTS_STREAM_STATE. */
bittts_stream_status bittts_stream_step(bittts_stream *stream, const bittts_callbacks *callbacks);

/* The samples as tools/speak.py's 16-bit wav holds them. */
int16_t bittts_pcm16(float sample);

/* One segment end to end after the text graph: durations into
 * durations[0..length), then every invoke through run_frames and the
 * samples to the PCM callbacks (bittts_stream_begin, then
 * bittts_stream_step until none remain). hidden / log_durations are the text
 * graph's outputs (length rows each at least). Everything is checked before
 * durations are written. info may be NULL. */
bittts_stream_status bittts_speak_segment(const bittts_stream_config *config,
                                          const float *hidden, size_t hidden_len,
                                          const float *log_durations,
                                          size_t log_durations_len, int32_t length,
                                          float duration_scale, int32_t *durations,
                                          size_t durations_len, const bittts_frames_io *io,
                                          float *work, size_t work_len,
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
