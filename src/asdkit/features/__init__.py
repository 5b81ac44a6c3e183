"""asdkit.features"""
