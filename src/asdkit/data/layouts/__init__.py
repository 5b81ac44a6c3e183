"""asdkit.data.layouts"""
