"""asdkit.metrics"""
