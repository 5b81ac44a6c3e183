"""Dataset layouts: one scanner per tree (DCASE 2020, 2021, 2022-2025, eval sets, plain folders, raw MIMII).

``scan(root)`` recognises the layout and returns a :class:`~asdkit.data.manifest.Manifest`;
``detect(root)`` only names the layout.
"""

from asdkit.data.layouts.common import read_attributes_csv
from asdkit.data.layouts.detect import LAYOUT_PATTERNS, detect, machine_dirs, scan
from asdkit.data.naming import parse_attribute_tail

__all__ = ["LAYOUT_PATTERNS", "detect", "machine_dirs", "parse_attribute_tail", "read_attributes_csv", "scan"]
