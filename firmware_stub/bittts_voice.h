/* A voice on the C99 engine: one segment's phoneme ids to PCM, the text
 * graph and the frames graph's stream run by bittts_engine, everything
 * between them by bittts_stream. No TFLite Micro, no heap, no static
 * mutable state; the caller gives one arena for both graphs and the
 * stream's work buffer. The text graph runs on the arena's start; once it
 * has, its log-durations become the durations and its float encoder states
 * become the int8 codes the frames input takes (bittts_hidden_codes), in
 * place at the arena's start: a quarter of the bytes, and exactly the codes
 * the stream would make frame by frame. The frames graph's arena begins
 * after max_tokens rows of codes, over everything else the text graph left.
 * Shipped voice (max_tokens 64, 128 channels, 8 frames an invoke): 45,376
 * bytes, the text graph's own arena; with the float states kept (33,024
 * bytes of outputs before the frames graph's 31,392) it would be 64,416. */
#ifndef BITTTS_VOICE_H_
#define BITTTS_VOICE_H_

#include <stddef.h>
#include <stdint.h>

#include "bittts_engine.h"
#include "bittts_stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const bittts_stream_config *config;
  const uint8_t *text_blob;    /* bittts_tf/engine/blob.py blobs, 8-byte aligned */
  size_t text_blob_len;
  const uint8_t *frames_blob;
  size_t frames_blob_len;
  /* Optional (NULL: none): given to both engines as their on_op observer. */
  void (*on_op)(void *user, int32_t op, int32_t opcode);
  void *on_op_user;
} bittts_voice_model;

typedef enum {
  BITTTS_VOICE_OK = 0,
  BITTTS_VOICE_ENGINE = 1,  /* an engine call failed: report.engine_status, .graph, .failed_op */
  BITTTS_VOICE_STREAM = 2,  /* the stream refused: report.stream_status */
  BITTTS_VOICE_GRAPH = 3    /* a graph lacks an input or output the voice needs, or its
                               type or size differs from the config */
} bittts_voice_status;

typedef struct {
  int32_t engine_status;  /* bittts_engine_status of the failed engine call, else 0 */
  int32_t stream_status;  /* bittts_stream_status of the failed stream call, else 0 */
  int32_t graph;          /* 0: text graph, 1: frames graph (of a failure) */
  int32_t failed_op;      /* the op an engine failure names, else -1 */
  size_t text_arena;      /* bytes of the text graph's arena, from the arena's start */
  size_t frames_offset;   /* where the frames graph's arena starts (after the codes) */
  size_t frames_arena;    /* and its bytes */
  bittts_duration_info durations;
} bittts_voice_report;

/* The arena both graphs need: max(text arena, frames_offset + frames arena),
 * frames_offset being max_tokens * encoder_channels code bytes; each part
 * rounded up to BITTTS_ENGINE_ALIGN. */
bittts_voice_status bittts_voice_arena_bytes(const bittts_voice_model *model, size_t *bytes,
                                             bittts_voice_report *report);

/* Speaks one segment (1 .. max_tokens phoneme ids): the samples go to
 * pcm->pcm_f32 / pcm->pcm_i16 (pcm->run_frames is not used). arena: at least
 * bittts_voice_arena_bytes, 8-byte aligned; work: bittts_stream_work_len
 * floats; durations: max_tokens values (frames per phoneme, written).
 * report may be NULL. */
bittts_voice_status bittts_voice_speak(const bittts_voice_model *model, const int32_t *ids,
                                       size_t n_ids, float duration_scale, uint8_t *arena,
                                       size_t arena_len, float *work, size_t work_len,
                                       int32_t *durations, size_t durations_len,
                                       const bittts_callbacks *pcm, bittts_voice_report *report);

#ifdef __cplusplus
}
#endif

#endif /* BITTTS_VOICE_H_ */
