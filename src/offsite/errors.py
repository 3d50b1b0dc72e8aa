"""The one exception type a user can cause; the CLI turns it into one line and exit code 2."""


class OffsiteError(Exception):
    """A problem with the user's input (missing file, unknown name, bad index, corrupt artifact)."""
