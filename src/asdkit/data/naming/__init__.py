"""File-name rules, one module per layout: a name to its fields (:class:`ClipName`) and back.

The layouts' scanners parse with these modules; the synthetic generator and the test trees build names
with them, so that a name is written and read by one rule. Modules: :mod:`dcase2020`, :mod:`dcase2021`,
:mod:`dcase2022` (2022-2025), :mod:`evalset` (anonymised evaluation names), :mod:`folder`, :mod:`mimii`.
"""

from asdkit.data.naming.clipname import (
    LABEL_WORDS,
    NO_ATTRIBUTE,
    ClipName,
    attribute_tail,
    label_from_word,
    label_word,
    parse_attribute_tail,
    section_from_name,
)

__all__ = [
    "LABEL_WORDS",
    "NO_ATTRIBUTE",
    "ClipName",
    "attribute_tail",
    "label_from_word",
    "label_word",
    "parse_attribute_tail",
    "section_from_name",
]
