"""`refusing`: the one table from a domain exception to its error code."""

from __future__ import annotations

import errno

import pytest

from streamapp.rul.training.artifacts import ArtifactError, InvalidVersion
from streamapp.rul.training.jobs import JobBusy
from streamapp.web.base import ApiError, refusing
from streamapp.web.errors import ERRORS
from streamapp.web.rul_api import REFUSALS


def refused(exc: Exception) -> ApiError:
    with pytest.raises(ApiError) as caught, refusing(REFUSALS, "do it", "/x"):
        raise exc
    return caught.value


def test_a_domain_exception_gets_its_code_and_status() -> None:
    error = refused(JobBusy("job abc is running"))
    assert (error.error, error.code, str(error.detail)) == (
        "job_running",
        ERRORS["job_running"],
        "job abc is running",
    )


def test_the_first_matching_class_wins_over_its_base() -> None:
    assert refused(InvalidVersion("bad")).error == "invalid_version"
    assert refused(ArtifactError("checksum")).error == "invalid_artifact"


def test_an_os_error_is_a_storage_failure() -> None:
    assert refused(OSError(errno.EROFS, "Read-only file system")).error == "not_writable"
    assert refused(OSError(errno.EIO, "I/O error")).error == "storage_unavailable"


def test_every_code_of_the_table_is_a_known_error() -> None:
    assert set(REFUSALS.values()) <= set(ERRORS)


def test_other_exceptions_pass() -> None:
    with pytest.raises(KeyError), refusing(REFUSALS, "do it", "/x"):
        raise KeyError("x")
