"""Errors that the CLI turns into one-line messages (never a bare traceback)."""


class AsdkitError(Exception):
    """A problem with the user's input or set-up; the message names the thing and says what to do."""


class DataError(AsdkitError):
    """Missing, empty, corrupt or unrecognised data."""


class AudioError(DataError):
    """A clip that cannot be read as usable audio."""


class AudioTooLongError(AudioError):
    """A clip whose header declares more audio than the configured limits (checked before decoding it)."""


class ModelError(AsdkitError):
    """A model file or run directory that cannot be loaded."""


class DiskFullError(AsdkitError):
    """No space left on the device an output is written to (the message names the file)."""
