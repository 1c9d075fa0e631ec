"""Every error Flywheel raises on purpose, in one hierarchy. The CLI's exit codes and the Prefect tasks'
retry rule both read it from here (:func:`exit_code`, :func:`is_bad_input`), so the two never disagree.

    FlywheelError                        base; an internal failure (exit 1, retried) unless a subclass says otherwise
    └── BadInput                         the user can fix it: exit 2, a Prefect task does not retry it
        ├── ConfigError (ValueError)     invalid configuration; the message names the field
        │   └── MethodUnavailable        a training method this machine cannot run (qlora without CUDA)
        ├── DataError (ValueError)       data that cannot be used: empty, missing columns, nothing left to train on
        ├── QuarantineError              one file that cannot be ingested, with its reason (the run goes on without it)
        ├── NotFound (LookupError)       a named thing that is not there: a served model, an interaction, a champion
        │   ├── UnknownModel             the gateway has no such model (serving)
        │   └── UnknownInteraction       feedback for an interaction id the store does not know (KeyError too)
        ├── ServiceUnavailable           a service or program the command needs is missing
        │   ├── NoPrefectAPI             no PREFECT_API_URL and no embedded server
        │   └── OcrUnavailable           no tesseract binary
        ├── ContentFiltered              a rail blocked the request (HTTP 400 content_filter, with on_block: error)
        ├── Unauthorized                 the gateway got no valid API key (HTTP 401)
        └── RateLimited                  a tenant over its requests or tokens per minute (HTTP 429, retry_after)
    StoreUnavailable                     the feedback store cannot be reached (an outage: HTTP 503, retried)

A missing or already existing file (``FileNotFoundError``, ``FileExistsError``) is bad input as well.
Anything else that escapes is a bug or an outage: exit 1, and the task's retries apply.
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base of every error Flywheel raises on purpose."""


class BadInput(FlywheelError):
    """Something the user gave (arguments, config, data, environment) cannot be used as it is."""


class ConfigError(BadInput, ValueError):
    """Invalid configuration; the message names the offending field(s)."""


class MethodUnavailable(ConfigError):
    """A training method that this machine cannot run (qlora without CUDA or bitsandbytes)."""


class DataError(BadInput, ValueError):
    """The data cannot be used: empty, missing columns, or nothing left after the length limit."""


class QuarantineError(BadInput):
    """A file (or unit) that cannot be ingested: ``reason`` is a short machine-readable word (``corrupt_pdf``,
    ``encrypted``, ...), ``detail`` what the reader saw."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class NotFound(BadInput, LookupError):
    """A named thing that does not exist (a model version, a champion to roll back to, an interaction)."""


class UnknownModel(NotFound):
    """The gateway serves no model of that name, or the workload has no champion yet."""


class UnknownInteraction(NotFound, KeyError):
    """Feedback names an interaction id that the store does not know."""

    def __str__(self) -> str:  # KeyError would print the id in quotes
        return str(self.args[0]) if self.args else ""


class ServiceUnavailable(BadInput):
    """A service or program that the command needs is not there."""


class NoPrefectAPI(ServiceUnavailable):
    """Flows never run against a throw-away server: a Prefect API must be configured."""


class OcrUnavailable(ServiceUnavailable):
    """Tesseract is not installed."""


class Unauthorized(BadInput):
    """No API key, or one the gateway does not know (or that was revoked)."""


class RateLimited(BadInput):
    """A tenant is over its requests or tokens per minute; ``retry_after`` seconds until it is not."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(FlywheelError):
    """The feedback store cannot be written or read: an outage, not the user's fault (retry later)."""


# What the CLI answers with exit code 2 and a task does not retry: the user's to fix, not transient.
BAD_INPUT: tuple[type[BaseException], ...] = (BadInput, FileNotFoundError, FileExistsError)


def is_bad_input(exc: BaseException) -> bool:
    return isinstance(exc, BAD_INPUT)


def exit_code(exc: BaseException) -> int:
    """2 for bad input, 1 for anything else (see the module docstring)."""
    return 2 if is_bad_input(exc) else 1


class ContentFiltered(BadInput):
    """A guard rail blocked the request or its answer (``on_block: error``): HTTP 400, code ``content_filter``."""

    def __init__(self, rail: str, reason: str, interaction_id: str):
        super().__init__(f"the request was blocked by the {rail} rail ({reason}); interaction {interaction_id}")
        self.rail, self.reason, self.interaction_id = rail, reason, interaction_id
