"""Workstation side: ONNX/TFLite export, int8 quantization and signed bundles (``export`` extra)."""
