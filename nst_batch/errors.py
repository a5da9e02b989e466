"""One exception family: the CLI catches `NstBatchError` once and prints its message."""

from __future__ import annotations

__all__ = ["NstBatchError", "ManifestError", "MediaError", "WeightsError", "DeviceError", "ExecutorError",
           "LockedError", "describe"]


class NstBatchError(Exception):
    """A user-facing error: the message says what is wrong, where, and how to fix it."""

    exit_code = 1


class ManifestError(NstBatchError):
    """The manifest (or a --set override) is invalid."""

    exit_code = 2


class MediaError(NstBatchError):
    """An image or video cannot be read or written."""


class WeightsError(NstBatchError):
    """VGG19 weights are missing or not a VGG19 state dict."""

    exit_code = 2


class DeviceError(NstBatchError):
    """The requested device is not available."""

    exit_code = 2


class ExecutorError(NstBatchError):
    """The executor cannot start (Ray missing, no cluster at the address)."""

    exit_code = 2


class LockedError(NstBatchError):
    """Another run holds the lock on the same outputs."""

    exit_code = 3


def describe(exc: BaseException) -> str:
    """One line for a failed unit: our own message, or the OS error with its file, or the exception's type."""
    if isinstance(exc, NstBatchError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
