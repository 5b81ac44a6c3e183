"""Section name -> class index of a trained model, with one error for a section the model does not know."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asdkit.errors import DataError


class SectionIndex:
    """The sections a model was trained on, in their saved order; :meth:`of` maps sections to indices."""

    def __init__(self, sections: Sequence[str]) -> None:
        self.sections = list(sections)
        self._index = {s: i for i, s in enumerate(self.sections)}

    def __len__(self) -> int:
        return len(self.sections)

    def of(self, sections: Iterable[str], owner: str) -> list[int]:
        """The index of each section; a DataError (one line, naming ``owner``) if any is not known."""
        sections = list(sections)
        unknown = sorted(set(sections) - set(self._index))
        known = ", ".join(self.sections)
        if "" in unknown:
            raise DataError(
                f"{owner}: the section of some clips is unknown (no section_XX in their names); "
                f"give it (--section; the model knows sections {known})"
            )
        if unknown:
            raise DataError(
                f"{owner}: section(s) {', '.join(unknown)} not in the training data "
                f"(the model knows sections {known})"
            )
        return [self._index[s] for s in sections]
