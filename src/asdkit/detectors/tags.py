"""What a detector reads, declared as tags (scikit-learn's estimator tags: a typed dataclass per estimator).

``Detector.tags()`` returns them from the detector's parameters; the fit/score bundle
(:mod:`asdkit.detectors.inputs`) is built from them, so no caller hands a detector anything on the side.
"""

from __future__ import annotations

from dataclasses import dataclass

from asdkit.features.frontends import LOGMEL

#: Proxy outliers a detector trains against: other machine types' training clips (loaded into the fit
#: bundle's ``proxy``), or other sections' clips of the machine type itself (already in the bundle).
PROXY_KINDS = ("machines", "sections")
#: How a detector uses a clip's section: as the condition of one model (an unknown section cannot be
#: scored), to pick its memory banks (an unknown section is scored against all), or not at all.
SECTION_USES = ("condition", "banks", "none")


@dataclass(frozen=True)
class DetectorTags:
    """``inputs``: front-end names (:mod:`asdkit.features.frontends`), the log-mel always among them;
    ``proxies``: a subset of :data:`PROXY_KINDS`; ``sections``: one of :data:`SECTION_USES`;
    ``min_frames``: the fewest log-mel frames a clip needs (its window), so that a shorter clip is a named
    skip when the bundle is built rather than an error in the middle of fitting or scoring."""

    inputs: tuple[str, ...] = (LOGMEL,)
    proxies: frozenset[str] = frozenset()
    sections: str = "none"
    min_frames: int = 1

    def __post_init__(self) -> None:
        if LOGMEL not in self.inputs:
            raise ValueError(f"tags: inputs must include {LOGMEL!r} (every model keeps its log-mel config)")
        if not self.proxies <= set(PROXY_KINDS):
            kinds = ", ".join(PROXY_KINDS)
            raise ValueError(f"tags: proxies must be among {kinds}, got {sorted(self.proxies)}")
        if self.sections not in SECTION_USES:
            uses = ", ".join(SECTION_USES)
            raise ValueError(f"tags: sections must be one of {uses}, got {self.sections!r}")
        if self.min_frames < 1:
            raise ValueError(f"tags: min_frames must be at least 1, got {self.min_frames}")

    @property
    def wants_machines(self) -> bool:
        """Whether the fit bundle must carry other machine types' training clips."""
        return "machines" in self.proxies

    def merged(self, other: DetectorTags) -> DetectorTags:
        """What two detectors read together (an ensemble's members)."""
        uses = {self.sections, other.sections}
        sections = next((u for u in SECTION_USES if u in uses), "none")
        inputs = self.inputs + tuple(i for i in other.inputs if i not in self.inputs)
        min_frames = max(self.min_frames, other.min_frames)
        return DetectorTags(inputs, self.proxies | other.proxies, sections, min_frames)
