"""The one exception type users see: the CLI prints its message on one line and exits 2."""


class PulseError(Exception):
    """Bad input (config, data, model files): a message that names the problem and the file."""
