"""asdkit.detectors"""
