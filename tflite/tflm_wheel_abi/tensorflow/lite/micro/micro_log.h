// Defined in tflite/bittts_tflm_wheel.cc: keeps the message for Python and
// passes it on to the wheel's own log.
#ifndef BITTTS_TFLM_WHEEL_ABI_MICRO_LOG_H_
#define BITTTS_TFLM_WHEEL_ABI_MICRO_LOG_H_

void MicroPrintf(const char* format, ...) __attribute__((format(printf, 1, 2)));

#endif  // BITTTS_TFLM_WHEEL_ABI_MICRO_LOG_H_
