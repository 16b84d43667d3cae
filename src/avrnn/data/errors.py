"""Errors a user can fix; the entry points print them as one line."""


class DataError(ValueError):
    """Missing, malformed or unusable data; the message names the path and the fix. `fault`, where the error
    is about one file that data.on_bad_file=skip can leave out: what is wrong with it, without its path or
    the fix (for the line that lists the skipped files)."""

    def __init__(self, message: str, fault: str | None = None):
        super().__init__(message)
        self.fault = fault
