"""The one exception a command raises to stop with a sentence and no traceback."""


class CommandError(Exception):
    """A failure to report in one sentence, without a traceback."""
