"""asdkit.models"""
