"""The one error type selfspec raises for bad input; its message is meant for the user as is."""


class SelfSpecError(Exception):
    """A problem with the user's input or environment, explained in the message (file:line or field)."""
