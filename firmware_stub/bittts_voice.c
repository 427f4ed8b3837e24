#include "bittts_voice.h"

#include <string.h>

static size_t align_up(size_t n) {
  return (n + BITTTS_ENGINE_ALIGN - 1) / BITTTS_ENGINE_ALIGN * BITTTS_ENGINE_ALIGN;
}

static bittts_voice_status engine_failed(bittts_voice_report *report, int32_t graph,
                                         bittts_engine_status status, int32_t op) {
  report->engine_status = (int32_t)status;
  report->graph = graph;
  report->failed_op = op;
  return BITTTS_VOICE_ENGINE;
}

bittts_voice_status bittts_voice_arena_bytes(const bittts_voice_model *model, size_t *bytes,
                                             bittts_voice_report *report) {
  bittts_voice_report ignored;
  bittts_engine_status status;
  bittts_stream_status stream_status;
  size_t text = 0, frames = 0;
  if (report == NULL) report = &ignored;
  memset(report, 0, sizeof *report);
  report->failed_op = -1;
  if (model == NULL || bytes == NULL || model->config == NULL)
    return engine_failed(report, 0, BITTTS_ENGINE_ERR_NULL, -1);
  /* A checked config's max_tokens * encoder_channels fits int32. */
  stream_status = bittts_check_config(model->config);
  if (stream_status != BITTTS_STREAM_OK) {
    report->stream_status = (int32_t)stream_status;
    return BITTTS_VOICE_STREAM;
  }
  status = bittts_engine_arena_bytes(model->text_blob, model->text_blob_len, &text);
  if (status != BITTTS_ENGINE_OK) return engine_failed(report, 0, status, -1);
  status = bittts_engine_arena_bytes(model->frames_blob, model->frames_blob_len, &frames);
  if (status != BITTTS_ENGINE_OK) return engine_failed(report, 1, status, -1);
  report->text_arena = align_up(text);
  report->frames_offset =
      align_up((size_t)model->config->max_tokens * (size_t)model->config->encoder_channels);
  report->frames_arena = align_up(frames);
  /* A blob's header may claim any arena: the sum must not wrap a 32-bit size_t. */
  if (report->text_arena < text || report->frames_arena < frames ||
      report->frames_arena > SIZE_MAX - report->frames_offset)
    return engine_failed(report, 1, BITTTS_ENGINE_ERR_SIZE, -1);
  *bytes = report->frames_offset + report->frames_arena > report->text_arena
               ? report->frames_offset + report->frames_arena
               : report->text_arena;
  return BITTTS_VOICE_OK;
}

/* A named input or output of one type and at least `count` values. */
static int find_view(const bittts_engine *engine, int output, const char *name, int32_t type,
                     size_t count, bittts_engine_tensor *view) {
  size_t k;
  bittts_engine_status status = bittts_engine_find(engine, output, name, &k);
  if (status == BITTTS_ENGINE_OK) {
    status = output ? bittts_engine_output(engine, k, view) : bittts_engine_input(engine, k, view);
  }
  return status == BITTTS_ENGINE_OK && view->type == type && view->count >= count;
}

typedef struct {
  const bittts_engine *frames;
  const bittts_engine_tensor *spectrum;
  const bittts_callbacks *pcm;
  bittts_engine_status status;
  int32_t failed_op;
} frames_context;

static int run_frames(void *user, const void *frames, const void *mask, const void **spectrum,
                      size_t *spectrum_len) {
  frames_context *context = (frames_context *)user;
  (void)frames;
  (void)mask;  /* already in the engine's input tensors: the io points there */
  context->status = bittts_engine_invoke(context->frames, &context->failed_op);
  if (context->status != BITTTS_ENGINE_OK) return 1;
  *spectrum = context->spectrum->data;
  *spectrum_len = context->spectrum->count;
  return 0;
}

static int pcm_f32(void *user, const float *samples, size_t n) {
  const bittts_callbacks *pcm = ((frames_context *)user)->pcm;
  return pcm->pcm_f32 != NULL ? pcm->pcm_f32(pcm->user, samples, n) : 0;
}

static int pcm_i16(void *user, const int16_t *samples, size_t n) {
  const bittts_callbacks *pcm = ((frames_context *)user)->pcm;
  return pcm->pcm_i16 != NULL ? pcm->pcm_i16(pcm->user, samples, n) : 0;
}

/* The frames graph's tensors as the stream writes and reads them. */
static bittts_voice_status frames_io(const bittts_stream_config *config,
                                     const bittts_engine *frames, bittts_frames_io *io,
                                     bittts_state_slot *slots, bittts_engine_tensor *spectrum) {
  bittts_engine_tensor in_frames, in_mask, state_in, state_out, frame_f0;
  int32_t type, k;
  size_t step = (size_t)config->step;
  char name[9] = "state_00";
  if (!find_view(frames, 0, "frames", BITTTS_ENGINE_TYPE_INT8, 0, &in_frames))
    return BITTTS_VOICE_GRAPH;
  type = in_frames.type;
  if (in_frames.count != step * (size_t)config->encoder_channels ||
      !find_view(frames, 0, "mask", type, step, &in_mask) || in_mask.count != step ||
      !find_view(frames, 1, "spectrum", type, step * (size_t)config->head_width, spectrum) ||
      spectrum->count != step * (size_t)config->head_width)
    return BITTTS_VOICE_GRAPH;
  memset(io, 0, sizeof *io);
  io->frames = in_frames.data;
  io->frames_len = in_frames.count;
  io->mask = in_mask.data;
  io->mask_len = in_mask.count;
  io->int8 = 1;
  io->frames_quant.scale = in_frames.scale;
  io->frames_quant.zero_point = in_frames.zero_point;
  io->mask_quant.scale = in_mask.scale;
  io->mask_quant.zero_point = in_mask.zero_point;
  io->spectrum_quant.scale = spectrum->scale;
  io->spectrum_quant.zero_point = spectrum->zero_point;
  for (k = 0; k < config->num_states; ++k) {
    size_t len = (size_t)config->state_frames[k] * (size_t)config->state_channels[k];
    name[6] = (char)('0' + k / 10);
    name[7] = (char)('0' + k % 10);
    if (!find_view(frames, 0, name, type, len, &state_in) || state_in.count != len ||
        !find_view(frames, 1, name, type, len, &state_out) || state_out.count != len ||
        state_in.scale != state_out.scale || state_in.zero_point != state_out.zero_point)
      return BITTTS_VOICE_GRAPH;
    slots[k].input = state_in.data;
    slots[k].output = state_out.data;
    slots[k].len = len;
    slots[k].zero_point = state_in.zero_point;
  }
  io->states = slots;
  io->n_states = (size_t)config->num_states;
  /* A source-phase config reads each row's frame F0 where the graph leaves it. */
  if (config->source_cutoff > 0.0f) {
    if (!find_view(frames, 1, "frame_f0", type, step * 2, &frame_f0) || frame_f0.count != step * 2)
      return BITTTS_VOICE_GRAPH;
    io->frame_f0 = frame_f0.data;
    io->frame_f0_len = frame_f0.count;
    io->frame_f0_quant.scale = frame_f0.scale;
    io->frame_f0_quant.zero_point = frame_f0.zero_point;
  }
  return BITTTS_VOICE_OK;
}

bittts_voice_status bittts_voice_speak(const bittts_voice_model *model, const int32_t *ids,
                                       size_t n_ids, float duration_scale, uint8_t *arena,
                                       size_t arena_len, float *work, size_t work_len,
                                       int32_t *durations, size_t durations_len,
                                       const bittts_callbacks *pcm, bittts_voice_report *report) {
  bittts_voice_report ignored;
  bittts_engine text, frames;
  bittts_engine_tensor phonemes, length, hidden, log_duration, spectrum;
  bittts_state_slot slots[BITTTS_MAX_STATES];
  bittts_frames_io io;
  bittts_stream stream;
  bittts_callbacks callbacks;
  frames_context context;
  bittts_engine_status status;
  bittts_stream_status stream_status;
  bittts_voice_status voice_status;
  size_t needed, max_tokens, channels;
  int32_t op;
  if (report == NULL) report = &ignored;
  voice_status = bittts_voice_arena_bytes(model, &needed, report);
  if (voice_status != BITTTS_VOICE_OK) return voice_status;
  if (pcm == NULL || arena == NULL) return engine_failed(report, 0, BITTTS_ENGINE_ERR_NULL, -1);
  if (arena_len < needed) return engine_failed(report, 0, BITTTS_ENGINE_ERR_SIZE, -1);
  if (work == NULL || durations == NULL || (pcm->pcm_f32 == NULL && pcm->pcm_i16 == NULL)) {
    report->stream_status = (int32_t)BITTTS_STREAM_NULL;
    return BITTTS_VOICE_STREAM;
  }
  /* Opening binds views and writes nothing: the frames engine's arena may
   * lie over the text graph's until the text graph has run. */
  status = bittts_engine_open(&text, model->text_blob, model->text_blob_len, arena,
                              report->text_arena, &op);
  if (status != BITTTS_ENGINE_OK) return engine_failed(report, 0, status, op);
  status = bittts_engine_open(&frames, model->frames_blob, model->frames_blob_len,
                              arena + report->frames_offset, report->frames_arena, &op);
  if (status != BITTTS_ENGINE_OK) return engine_failed(report, 1, status, op);
  text.on_op = frames.on_op = model->on_op;
  text.on_op_user = frames.on_op_user = model->on_op_user;

  max_tokens = (size_t)model->config->max_tokens;
  channels = (size_t)model->config->encoder_channels;
  if (!find_view(&text, 0, "phonemes", BITTTS_ENGINE_TYPE_INT32, max_tokens, &phonemes) ||
      !find_view(&text, 0, "length", BITTTS_ENGINE_TYPE_INT32, 1, &length) ||
      !find_view(&text, 1, "hidden", BITTTS_ENGINE_TYPE_FLOAT32, max_tokens * channels, &hidden) ||
      !find_view(&text, 1, "log_duration", BITTTS_ENGINE_TYPE_FLOAT32, max_tokens, &log_duration))
    return BITTTS_VOICE_GRAPH;
  voice_status = frames_io(model->config, &frames, &io, slots, &spectrum);
  if (voice_status != BITTTS_VOICE_OK) return voice_status;

  stream_status = bittts_text_input(model->config, ids, n_ids, (int32_t *)phonemes.data,
                                    phonemes.count, (int32_t *)length.data);
  /* The stream's buffers are checked before the text graph runs. */
  if (stream_status == BITTTS_STREAM_OK)
    stream_status = bittts_check_frames_io(model->config, &io, work_len);
  if (stream_status == BITTTS_STREAM_OK && durations_len < n_ids)
    stream_status = BITTTS_STREAM_SIZE;
  if (stream_status != BITTTS_STREAM_OK) {
    report->stream_status = (int32_t)stream_status;
    return BITTTS_VOICE_STREAM;
  }
  /* The inputs' bytes are the arena's to reuse once read: n_ids, not
   * *length.data, is the segment's length after the invoke. */
  status = bittts_engine_invoke(&text, &op);
  if (status != BITTTS_ENGINE_OK) return engine_failed(report, 0, status, op);

  /* The log-durations are read before the codes go over the outputs. */
  stream_status = bittts_durations(model->config, (const float *)log_duration.data,
                                   log_duration.count, (int32_t)n_ids, duration_scale, durations,
                                   durations_len, &report->durations);
  if (stream_status == BITTTS_STREAM_OK)
    stream_status = bittts_hidden_codes((const float *)hidden.data, n_ids * channels,
                                        io.frames_quant, (int8_t *)arena, report->frames_offset);
  if (stream_status == BITTTS_STREAM_OK)
    stream_status = bittts_stream_begin_codes(&stream, model->config, (const int8_t *)arena,
                                              n_ids * channels, durations, n_ids, &io, work,
                                              work_len);
  if (stream_status != BITTTS_STREAM_OK) {
    report->stream_status = (int32_t)stream_status;
    return BITTTS_VOICE_STREAM;
  }

  context.frames = &frames;
  context.spectrum = &spectrum;
  context.pcm = pcm;
  context.status = BITTTS_ENGINE_OK;
  context.failed_op = -1;
  callbacks.user = &context;
  callbacks.run_frames = run_frames;
  callbacks.pcm_f32 = pcm->pcm_f32 != NULL ? pcm_f32 : NULL;
  callbacks.pcm_i16 = pcm->pcm_i16 != NULL ? pcm_i16 : NULL;
  while (stream_status == BITTTS_STREAM_OK && bittts_stream_remaining(&stream) > 0)
    stream_status = bittts_stream_step(&stream, &callbacks);
  if (context.status != BITTTS_ENGINE_OK) return engine_failed(report, 1, context.status, context.failed_op);
  if (stream_status != BITTTS_STREAM_OK) {
    report->stream_status = (int32_t)stream_status;
    return BITTTS_VOICE_STREAM;
  }
  return BITTTS_VOICE_OK;
}
