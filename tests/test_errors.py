"""The input error's one-line message and the termination signal's place among exceptions."""

from pathlib import Path

import pytest

from gyrodeblur.errors import InputError, Terminated


@pytest.mark.parametrize(("source", "message"), [
    ("gyro.csv", "gyro.csv: NaN at line 3"),
    (Path("clips") / "a" / "frames.csv", f"{Path('clips') / 'a' / 'frames.csv'}: NaN at line 3"),
    (None, "NaN at line 3"),
    ("", "NaN at line 3"),  # an input built in Python names no file
])
def test_message_is_the_file_then_the_problem(source, message):
    error = InputError(source, "NaN at line 3")
    assert str(error) == message and error.args == (message,)
    assert error.problem == "NaN at line 3"
    assert error.source == (None if source in (None, "") else str(source))
    assert isinstance(error, ValueError)  # callers that catch ValueError still see it


def test_located_names_the_file_only_where_none_was_named():
    unnamed = InputError(None, "unsorted timestamps")
    placed = unnamed.located(Path("log") / "gyro.csv")
    assert str(placed) == f"{Path('log') / 'gyro.csv'}: unsorted timestamps"
    assert placed.source == str(Path("log") / "gyro.csv") and placed.problem == unnamed.problem
    named = InputError("camera.json", "fx must be positive")
    assert named.located("other.json") is named
    assert str(InputError("", "empty").located("x.csv")) == "x.csv: empty"


def test_termination_is_handled_where_ctrl_c_is_and_not_as_an_error():
    with pytest.raises(KeyboardInterrupt):
        raise Terminated()
    assert not issubclass(Terminated, Exception)  # `except Exception` does not swallow it
