"""Every exception mpswarm defines, in one place.

Two families live here:

* ``MpswarmError`` and its children: mistakes and failures of a run (bad options, a broken
  locustfile). The CLI turns them into one-line messages and exit codes.
* Locust's control-flow exceptions (``StopUser``, ``RescheduleTask`` ...), raised by user code to
  steer a simulated user. They keep Locust's names and meaning so locustfiles run unchanged.
"""

from __future__ import annotations

from requests import exceptions as _requests_exceptions


class MpswarmError(Exception):
    """Base class of mpswarm's own errors."""

    #: Process exit code the command line uses for this error.
    exit_code = 1

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # Errors may cross the pipe between a worker and the parent: keep them picklable
        # whatever the subclass __init__ signature is.
        return (self.__class__, self.args)


#: Locust's name for the base of its errors.
LocustError = MpswarmError


class UsageError(MpswarmError):
    """A wrong option or option value. Exit code 2."""

    exit_code = 2


class LocustfileError(MpswarmError):
    """The locustfile is missing, cannot be imported, or defines nothing to run. Exit code 2."""

    exit_code = 2


class WorkerError(MpswarmError):
    """A worker process could not be started or failed unrecoverably."""


# --- Locust's control-flow exceptions -------------------------------------------------------


class StopUser(Exception):
    """Raised in a task or ``on_start`` to stop this simulated user (``on_stop`` still runs)."""


class RunnerAlreadyExistsError(Exception):
    """``Environment.create_local_runner()`` on an environment that has a runner already."""


class StopTest(Exception):
    """Raised in user code to stop the whole test run, on every worker."""


class InterruptTaskSet(Exception):
    """Leave the current TaskSet and return control to its parent.

    Args:
        reschedule: if True the parent picks its next task at once, otherwise it waits first.
    """

    def __init__(self, reschedule: bool = True) -> None:
        super().__init__(reschedule)
        self.reschedule = reschedule


class RescheduleTask(Exception):
    """Abort the current task; the user waits, then picks its next task."""


class RescheduleTaskImmediately(Exception):
    """Abort the current task; the user picks its next task without waiting."""


class ResponseError(Exception):
    """A response was marked as failed (``catch_response`` with ``failure()``)."""


class CatchResponseError(ResponseError):
    """Raised by ``response.failure()`` use inside ``catch_response`` blocks (Locust's name)."""


# requests' own exception types: a failed request's ``response.error`` is one of them (its
# ``raise_for_status()`` raises it), so a locustfile's ``except requests.RequestException``
# (or ``MissingSchema``...) catches them as under Locust.
#: A request that got no (valid) response: refused, reset, timed out, garbage...
RequestError = _requests_exceptions.RequestException
#: ``Response.raise_for_status()`` found a 4xx or 5xx status.
HTTPError = _requests_exceptions.HTTPError
#: A request URL has no scheme and the user has no host to join it to.
MissingSchema = _requests_exceptions.MissingSchema
#: A request URL's scheme is not http or https.
InvalidSchema = _requests_exceptions.InvalidSchema
#: A request URL that cannot be parsed (a host that is no host name).
InvalidURL = _requests_exceptions.InvalidURL


class MissingWaitTimeError(Exception):
    """Kept for Locust compatibility; mpswarm's default wait time is zero."""


#: Classes Locust 1.0 renamed; importing the old name fails with Locust's explanation.
RENAMED_CLASSES = {"Locust": "User", "HttpLocust": "HttpUser", "FastHttpLocust": "FastHttpUser"}


def renamed_class_error(name: str) -> ImportError:
    """The ImportError for a class name of Locust before 1.0 (``from locust import Locust``)."""
    new = RENAMED_CLASSES[name]
    return ImportError(
        f"The {name} class has been renamed to {new} in version 1.0. "
        "For more info see: https://docs.locust.io/en/latest/changelog.html#changelog-1-0"
    )
