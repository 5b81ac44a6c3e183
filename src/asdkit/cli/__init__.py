"""asdkit.cli"""
