/* The MPS2 boards' CMSDK APB timer 0, a 32-bit down-counter at the board's
 * peripheral clock, as the benchmarks and the board application use it.
 * Under QEMU with `-icount shift=0` every instruction advances the virtual
 * clock by 1 ns, so the timer counts instructions (one tick per 40 at its
 * 25 MHz); mps2_timer_start calibrates that on a loop of known length
 * rather than assuming it. QEMU models no pipeline or wait states: these
 * are instruction counts, not cycles. */
#ifndef BITTTS_MPS2_TIMER_H_
#define BITTTS_MPS2_TIMER_H_

#include <stdint.h>

#define MPS2_TIMER_CTRL (*(volatile uint32_t *)0x40000000u)
#define MPS2_TIMER_VALUE (*(volatile uint32_t *)0x40000004u)
#define MPS2_TIMER_RELOAD (*(volatile uint32_t *)0x40000008u)

/* The instructions mps2_timer_start's calibration loop runs. */
#define MPS2_CALIBRATION_INSTRUCTIONS 4000000u

static inline uint32_t mps2_ticks(void) { return MPS2_TIMER_VALUE; }

/* n iterations of two instructions (subs, bne). */
static void __attribute__((noinline)) mps2_count_loop(uint32_t n) {
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

/* Starts the timer from its top; returns the ticks of
 * MPS2_CALIBRATION_INSTRUCTIONS instructions. Elapsed ticks are then
 * start - mps2_ticks() (it counts down). */
static inline uint32_t mps2_timer_start(void) {
  uint32_t start;
  MPS2_TIMER_CTRL = 0;
  MPS2_TIMER_RELOAD = 0xFFFFFFFFu;
  MPS2_TIMER_VALUE = 0xFFFFFFFFu;
  MPS2_TIMER_CTRL = 1;
  start = mps2_ticks();
  mps2_count_loop(MPS2_CALIBRATION_INSTRUCTIONS / 2);
  return start - mps2_ticks();
}

#endif /* BITTTS_MPS2_TIMER_H_ */
