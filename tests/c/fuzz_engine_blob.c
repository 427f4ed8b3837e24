/* libFuzzer target: the C99 engine's blob reader and, behind it, every
 * kernel's check and eval (firmware_stub/bittts_engine*.c).
 *
 * The input is a blob as bittts_tf/engine/blob.py writes it; before opening
 * it the harness writes the right magic, version, total size and CRC-32 into
 * its header (so mutations reach the records, not just the first checks).
 * It is opened on an arena of exactly the header's size (at most 1 MiB),
 * both in heap blocks of their exact lengths so that AddressSanitizer
 * reports any access outside them. What must hold, else a crash with its
 * input: open either refuses with a status or accepts, and an accepted blob
 * invokes (twice, on whatever the arena holds) without reading or writing
 * outside the blob and the arena; every graph input and output view lies
 * inside the arena. Seeds: tests/c/fuzz_seeds/fuzz_engine_blob/ (one-op
 * blobs of the shipped voice's graphs, written by
 * tests/test_engine_blob.py::test_fuzz_seeds_are_current). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bittts_engine.h"
#include "bittts_stream.h"

enum { kMaxArena = 1 << 20 };

/* How far inputs got, printed at exit (tools/fuzz_kernels.py reports it). */
static unsigned long opened, refused, invoked_ok;

__attribute__((destructor)) static void print_depth(void) {
  fprintf(stderr, "fuzz_engine_blob depth: opened %lu, refused %lu, invoked %lu\n", opened,
          refused, invoked_ok);
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static void check_view(const bittts_engine_tensor *view, const uint8_t *arena, size_t arena_len) {
  const uint8_t *p = (const uint8_t *)view->data;
  if (p < arena || p + view->bytes > arena + arena_len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const size_t header = 4u * BITTTS_ENGINE_HEADER_WORDS;
  uint8_t *blob, *arena;
  size_t arena_len = 0, k;
  bittts_engine engine;
  int32_t op;
  if (size < header || size > (1u << 20)) return 0;
  blob = (uint8_t *)malloc(size);  /* malloc's blocks are 8-aligned, as open wants */
  if (blob == NULL) return 0;
  memcpy(blob, data, size);
  memcpy(blob, BITTTS_ENGINE_MAGIC, 4);
  put_u32(blob + 4 * BITTTS_ENGINE_H_VERSION, BITTTS_ENGINE_VERSION);
  put_u32(blob + 4 * BITTTS_ENGINE_H_TOTAL_BYTES, (uint32_t)size);
  put_u32(blob + 4 * BITTTS_ENGINE_H_HEADER_BYTES, (uint32_t)header);
  put_u32(blob + 4 * BITTTS_ENGINE_H_CRC32, bittts_crc32(0, blob + header, size - header));
  if (bittts_engine_arena_bytes(blob, size, &arena_len) != BITTTS_ENGINE_OK ||
      arena_len > kMaxArena) {
    free(blob);
    return 0;
  }
  arena = (uint8_t *)malloc(arena_len ? arena_len : 1);
  if (arena == NULL) {
    free(blob);
    return 0;
  }
  memset(arena, 0x5A, arena_len);
  if (bittts_engine_open(&engine, blob, size, arena, arena_len, &op) != BITTTS_ENGINE_OK) {
    ++refused;
  } else {
    bittts_engine_tensor view;
    ++opened;
    for (k = 0; bittts_engine_input(&engine, k, &view) == BITTTS_ENGINE_OK; ++k)
      check_view(&view, arena, arena_len);
    for (k = 0; bittts_engine_output(&engine, k, &view) == BITTTS_ENGINE_OK; ++k)
      check_view(&view, arena, arena_len);
    if (bittts_engine_invoke(&engine, &op) == BITTTS_ENGINE_OK) ++invoked_ok;
    (void)bittts_engine_invoke(&engine, &op);
  }
  free(arena);
  free(blob);
  return 0;
}
