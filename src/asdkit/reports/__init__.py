"""asdkit.reports"""
