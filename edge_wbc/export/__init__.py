"""Export for devices: the Android bundle (:mod:`.android`) and TFLite metadata read/write (:mod:`.tflite_metadata`)."""
