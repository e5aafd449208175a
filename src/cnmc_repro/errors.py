"""Errors a user can cause. The command line prints their message as one sentence and exits non-zero."""


class UserError(Exception):
    """A problem with the input (data folder, image, spec, option) that the user can fix.

    The message is one sentence that names the thing at fault and, where there is one, the fix.
    """

    exit_code = 2


class BadImage(UserError):
    """An image file that cannot be decoded (unreadable, truncated, empty)."""

    def __init__(self, path, why: str):
        self.path = path
        self.why = why
        super().__init__(f"cannot read image {path}: {why}; fix or remove the file, or pass --skip-bad to leave it out")
