"""`python -m herd` runs the command line."""

from herd.cli.main import run

run()
