"""The input error's one-line message and the termination signal's place among exceptions."""

import pickle
from pathlib import Path

import pytest
import torch

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


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise InputError(f"clips/{index}/gyro.csv", "NaN at line 3")


def test_an_input_error_crosses_processes_as_itself():
    error = pickle.loads(pickle.dumps(InputError("gyro.csv", "NaN at line 3")))
    assert (error.source, error.problem, str(error)) == ("gyro.csv", "NaN at line 3",
                                                         "gyro.csv: NaN at line 3")
    # A DataLoader worker's error is rebuilt from its message: one argument.
    loader = torch.utils.data.DataLoader(_Unreadable(), num_workers=1)
    with pytest.raises(InputError, match="clips/0/gyro.csv: NaN at line 3"):
        next(iter(loader))
    assert str(InputError("the message alone")) == "the message alone"
