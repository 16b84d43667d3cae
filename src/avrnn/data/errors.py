"""Errors a user can fix; the entry points print them as one line."""


class DataError(ValueError):
    """Missing, malformed or unusable data; the message names the path and the fix."""
