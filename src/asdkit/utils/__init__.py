"""asdkit.utils"""
