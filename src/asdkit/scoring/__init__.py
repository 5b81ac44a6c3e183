"""asdkit.scoring"""
