"""Exporting trained models for runtimes without asdkit (ONNX)."""
