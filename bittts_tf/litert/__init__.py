"""Our side of TFLite / LiteRT, beneath both `bittts_tf.runtime` and
`bittts_tf.export`: reading and checking .tflite flatbuffers
(`tflite_file`) and our C libraries from Python (`native`: the decoder
through ctypes, a LiteRT interpreter with our custom ops registered).
Imports no TensorFlow."""
