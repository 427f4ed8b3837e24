/* The board image: the voice on the C99 engine speaks a phrase on an Arm
 * MPS2 board as QEMU emulates it (mps2-an500: Cortex-M7, mps2-an386:
 * Cortex-M4), and writes its 16-bit PCM to a host file over semihosting.
 *
 *   qemu-system-arm -M mps2-an500 -nographic -monitor none -serial null \
 *     -semihosting-config enable=on,target=native,arg=speak,arg=out.pcm,arg=0 \
 *     -kernel build/speak_m7.elf
 *
 * argv[1]: the PCM file (raw int16, little-endian, the model's sample rate),
 * argv[2]: the phrase (index into the generated phrase table, default 0).
 * It prints the samples, the instructions (QEMU -icount shift=0: the CMSDK
 * timer then counts instructions, calibrated on a loop of known length) per
 * op kind, and the stack's high-water mark, found by painting the stack
 * before speaking. The voice's RAM is static: the arena, the stream's work
 * buffer and the durations are in .bss, where the linker map shows them. */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "bittts_model_data.h"
#include "bittts_voice.h"
#include "mps2_timer.h"

uintptr_t semihost(uintptr_t op, const void *arg); /* startup.c */

enum { kSysOpen = 0x01, kSysClose = 0x02, kSysWrite0 = 0x04, kSysWrite = 0x05, kOpenWriteBinary = 5 };

/* Text out through SYS_WRITE0, without the C library's stdio (which would
 * cost some 20 KB of flash): "%s" and "%d" (int) / "%u" (unsigned) only. */
static void say(const char *format, ...) {
  static char line[256];
  size_t n = 0;
  va_list args;
  va_start(args, format);
  for (; *format && n + 12 < sizeof line; ++format) {
    if (*format != '%') {
      line[n++] = *format;
      continue;
    }
    ++format;
    if (*format == 's') {
      const char *text = va_arg(args, const char *);
      while (*text && n + 12 < sizeof line) line[n++] = *text++;
    } else if (*format == 'd' || *format == 'u') {
      char digits[11];
      int count = 0;
      unsigned value;
      if (*format == 'd') {
        int v = va_arg(args, int);
        if (v < 0) line[n++] = '-';
        value = v < 0 ? 0u - (unsigned)v : (unsigned)v;
      } else {
        value = va_arg(args, unsigned);
      }
      do {
        digits[count++] = (char)('0' + value % 10u);
        value /= 10u;
      } while (value);
      while (count) line[n++] = digits[--count];
    }
  }
  va_end(args);
  line[n] = '\0';
  semihost(kSysWrite0, line);
}

static int parse_index(const char *text) {
  int value = 0;
  while (*text >= '0' && *text <= '9' && value < 100000) value = value * 10 + (*text++ - '0');
  return *text ? -1 : value;
}

static uint8_t arena[BITTTS_MODEL_ENGINE_ARENA_BYTES] __attribute__((aligned(8)));
static float work[BITTTS_MODEL_STREAM_WORK_FLOATS];
static int32_t durations[BITTTS_MODEL_MAX_TOKENS];
static const bittts_stream_config config = BITTTS_MODEL_STREAM_CONFIG;

/* Timer ticks per op kind: the time since the previous op ended. */
typedef struct {
  uint32_t last;
  uint32_t ticks[32];
  uint32_t calls[32];
} op_clock;

static void on_op(void *user, int32_t op, int32_t opcode) {
  op_clock *clock = (op_clock *)user;
  uint32_t now = mps2_ticks();
  (void)op;
  if (opcode >= 0 && opcode < 32) {
    clock->ticks[opcode] += clock->last - now;
    clock->calls[opcode] += 1;
  }
  clock->last = mps2_ticks();
}

typedef struct {
  uintptr_t file;
  uint32_t samples;
  int failed;
} pcm_sink;

static int write_pcm(void *user, const int16_t *samples, size_t n) {
  pcm_sink *sink = (pcm_sink *)user;
  const uintptr_t block[3] = {sink->file, (uintptr_t)samples, n * sizeof *samples};
  if (semihost(kSysWrite, block) != 0) sink->failed = 1;
  sink->samples += (uint32_t)n;
  return sink->failed;
}

/* The stack grows down from __stack_top to the end of .bss (mps2.ld). */
extern uint32_t __bss_end[];
#define STACK_PAINT 0xC5C5C5C5u

/* Paints from the end of .bss up to 256 bytes below the caller's stack
 * pointer (this call's own frame), returns that top. */
static uint32_t *__attribute__((noinline)) paint_stack(void) {
  uintptr_t sp;
  uint32_t *p = __bss_end, *top;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  top = (uint32_t *)((sp - 256u) & ~(uintptr_t)3u);
  for (; p < top; ++p) *p = STACK_PAINT;
  return top;
}

static size_t stack_used(uint32_t *top) {
  const uint32_t *p = __bss_end;
  while (p < top && *p == STACK_PAINT) ++p;
  return (size_t)((const char *)top - (const char *)p);
}

int main(int argc, char **argv) {
  static op_clock clock;
  const bittts_voice_model model = {&config, bittts_model_text_blob, BITTTS_MODEL_TEXT_BLOB_BYTES,
                                    bittts_model_frames_blob, BITTTS_MODEL_FRAMES_BLOB_BYTES,
                                    on_op, &clock};
  bittts_callbacks pcm;
  bittts_voice_report report;
  pcm_sink sink = {0, 0, 0};
  const bittts_model_phrase *phrase;
  uint32_t *stack_top, start, spent, calibration;
  size_t offset = 0, peak_stack = 0;
  int index = argc > 2 ? parse_index(argv[2]) : 0;
  uint16_t k;
  struct {
    const char *name;
    uintptr_t mode;
    uintptr_t length;
  } open_block;
  if (argc < 2 || index < 0 || index >= BITTTS_MODEL_NUM_PHRASES) {
    say("usage: speak <pcm file> [phrase 0..%d]\n", BITTTS_MODEL_NUM_PHRASES - 1);
    return 2;
  }
  open_block.name = argv[1];
  open_block.mode = kOpenWriteBinary;
  open_block.length = strlen(argv[1]);
  sink.file = semihost(kSysOpen, &open_block);
  if (sink.file == (uintptr_t)-1) {
    say("speak: cannot open %s\n", argv[1]);
    return 3;
  }
  calibration = mps2_timer_start();
  memset(&pcm, 0, sizeof pcm);
  pcm.user = &sink;
  pcm.pcm_i16 = write_pcm;
  phrase = &bittts_model_phrases[index];
  say("phrase %d: \"%s\", %u segment(s)\n", index, phrase->text, phrase->num_segments);
  start = mps2_ticks();
  for (k = 0; k < phrase->num_segments; ++k) {
    bittts_voice_status status;
    size_t used;
    stack_top = paint_stack();
    clock.last = mps2_ticks();
    status = bittts_voice_speak(&model, phrase->ids + offset, phrase->segment_lengths[k], 1.0f,
                                arena, sizeof arena, work, BITTTS_MODEL_STREAM_WORK_FLOATS,
                                durations, BITTTS_MODEL_MAX_TOKENS, &pcm, &report);
    used = stack_used(stack_top);
    if (used > peak_stack) peak_stack = used;
    if (status != BITTTS_VOICE_OK || sink.failed) {
      say("speak: segment %u failed: voice status %d, engine %d (%s) at graph %d op %d, "
             "stream %d\n", k, (int)status, (int)report.engine_status,
             bittts_engine_status_message(report.engine_status), (int)report.graph,
             (int)report.failed_op, (int)report.stream_status);
      return 1;
    }
    offset += phrase->segment_lengths[k];
  }
  spent = start - mps2_ticks();
  semihost(kSysClose, &sink.file);
  say("samples %u\n", (unsigned)sink.samples);
  say("calibration %u %u\n", MPS2_CALIBRATION_INSTRUCTIONS, (unsigned)calibration);
  say("ticks %u\n", (unsigned)spent);
  say("arena %u text %u frames %u at %u\n", (unsigned)sizeof arena, (unsigned)report.text_arena,
      (unsigned)report.frames_arena, (unsigned)report.frames_offset);
  say("stack %u\n", (unsigned)peak_stack);
  for (k = 0; k < 32; ++k) {
    if (clock.calls[k]) say("op %u %u %u\n", k, (unsigned)clock.calls[k], (unsigned)clock.ticks[k]);
  }
  return 0;
}
