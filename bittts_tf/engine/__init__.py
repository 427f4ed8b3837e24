"""The C99 engine's Python side: an exported int8 graph lowered to the
engine's blob (a tensor table, an arena plan, one record per op with its
requantization parameters computed as TFLite Micro's reference kernels
compute them in Prepare), the generated C header, and the host build of the
engine through ctypes.

The engine (`firmware_stub/bittts_engine*.c`) runs the voice's two graphs
without TFLite Micro: no interpreter, no flatbuffer parsing and no
allocation on the device, only the ops these graphs use."""
