"""The one exception type users see: the CLI prints its message on one line and exits 2."""


class PulseError(Exception):
    """Bad input (config, data, model files): a message that names the problem and the file."""


def first_line(e: Exception) -> str:
    """The first non-empty line of a library's error (some start with a blank line), for a one-line message."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
