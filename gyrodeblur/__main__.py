"""``python -m gyrodeblur``: the command line (what ``torchrun -m gyrodeblur train`` runs)."""

from gyrodeblur.cli import app

app(prog_name="gyrodeblur")
