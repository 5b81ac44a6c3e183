"""Which (section, domain) groups of a machine type's test clips have few or no training clips.

A detector with memory banks per section and domain scores a clip against its section's banks: a target
domain without training clips is scored against the source bank only, and a bank of one or two clips lies
so sparse that every unseen normal clip looks far from it. Neither stops a run, but the user must hear of
it, named by machine, section and domain, before trusting the decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from asdkit.data.manifest import Clip

#: A (section, domain) group with fewer training clips than this is named as a thin bank.
THIN_BANK = 3


def training_coverage_warnings(train: Iterable[Clip], test: Iterable[Clip]) -> list[str]:
    """One message per (machine, section, domain) that the test clips hold and the training clips hold
    fewer than :data:`THIN_BANK` of (none at all included); sections only in training are not named."""
    have = Counter((c.machine, c.section, c.domain) for c in train)
    wanted = Counter((c.machine, c.section, c.domain) for c in test)
    messages = []
    for (machine, section, domain), n_test in sorted(wanted.items()):
        n = have.get((machine, section, domain), 0)
        if n == 0:
            messages.append(
                f"{machine} section {section} {domain}: no training clips for {n_test} test clip(s); they "
                "are scored against the section's other domain(s), and its decisions are less reliable"
            )
        elif n < THIN_BANK:
            messages.append(
                f"{machine} section {section} {domain}: {n} training clip(s) only; a bank this small "
                "scores unseen normal clips as far from it, so its decisions are unreliable"
            )
    return messages
