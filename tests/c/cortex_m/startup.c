/* Bare-metal start-up for the test programs on the Arm MPS2 boards that QEMU
 * emulates (mps2-an386: Cortex-M4, mps2-an500: Cortex-M7). Output, the
 * command line and the exit status go through semihosting, so QEMU prints
 * what the program prints and exits with its status. Linked with
 * -nostartfiles and newlib's rdimon.specs (stdio over semihosting). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv);
void initialise_monitor_handles(void); /* newlib rdimon: opens stdin/out/err */

/* From mps2.ld. */
extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

enum {
  kSysWrite0 = 0x04,
  kSysGetCmdline = 0x15,
  kSysExitExtended = 0x20,
  kApplicationExit = 0x20026 /* ADP_Stopped_ApplicationExit */
};

/* Also for programs that write files over semihosting (SYS_OPEN, SYS_WRITE). */
uintptr_t semihost(uintptr_t op, const void *arg);
uintptr_t semihost(uintptr_t op, const void *arg) {
  register uintptr_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* SYS_EXIT_EXTENDED carries the status (plain SYS_EXIT only says success or
 * not), so a failing test fails the make target. */
static void semihost_exit(int status) {
  const uintptr_t block[2] = {kApplicationExit, (uintptr_t)(intptr_t)status};
  for (;;) semihost(kSysExitExtended, block);
}

void HardFault_Handler(void) {
  semihost(kSysWrite0, "fault: the test program crashed (HardFault or another exception)\n");
  semihost_exit(70);
}

enum { kMaxArgs = 8 };

/* argv from QEMU's -semihosting-config arg=... (the test takes its seed as
 * argv[1]). */
static int command_line(char *buffer, size_t size, char **argv) {
  struct {
    char *buffer;
    uintptr_t size;
  } block;
  int argc = 0;
  char *p;
  block.buffer = buffer;
  block.size = size - 1;
  if (semihost(kSysGetCmdline, &block) != 0) return 0;
  buffer[block.size < size ? block.size : size - 1] = '\0';
  for (p = buffer; *p && argc < kMaxArgs;) {
    while (*p == ' ') *p++ = '\0';
    if (!*p) break;
    argv[argc++] = p;
    while (*p && *p != ' ') ++p;
  }
  argv[argc] = NULL;
  return argc;
}

void Reset_Handler(void) {
  static char cmdline[256];
  static char *argv[kMaxArgs + 1];
  int argc, status;
  /* Hard-float code needs the FPU on before the first float instruction:
   * CPACR full access for coprocessors 10 and 11. */
  *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  memcpy(__data_start, __data_load, (size_t)((char *)__data_end - (char *)__data_start));
  memset(__bss_start, 0, (size_t)((char *)__bss_end - (char *)__bss_start));
  initialise_monitor_handles();
  argc = command_line(cmdline, sizeof cmdline, argv);
  status = main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  semihost_exit(status);
}

static void default_handler(void) { HardFault_Handler(); }

/* Initial stack pointer, then the exception handlers (16 system entries;
 * the tests enable no interrupts). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    default_handler, /* NMI */
    HardFault_Handler,
    default_handler, default_handler, default_handler, /* MemManage, BusFault, UsageFault */
    0, 0, 0, 0,
    default_handler, /* SVCall */
    default_handler, /* DebugMonitor */
    0,
    default_handler, /* PendSV */
    default_handler, /* SysTick */
};
