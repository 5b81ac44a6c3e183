"""The learning-rate ramp-down of the CP-JKU systems, shared by every detector that offers one."""

from __future__ import annotations


class RampDown:
    """LR factor per epoch: 1 up to ``start``, then linearly down to 0 at ``start + length`` (and after).

    ``length <= 0`` switches the ramp-down off. A class rather than a closure, so that Lightning's
    ``ddp_spawn`` can pickle it.
    """

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length

    def __call__(self, epoch: int) -> float:
        if self.length <= 0:
            return 1.0
        return float(min(1.0, max(0.0, 1.0 - (epoch - self.start) / self.length)))
