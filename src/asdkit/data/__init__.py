"""asdkit.data"""
