"""Doctests' temporary files (``tempfile.mkdtemp()`` in the examples) in pytest's own
temporary folder, which it clears, not left in the system's."""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _doctest_files_in_pytest_tmp(request, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
