"""`python -m herd` runs the command line."""

from herd.cli.launch import run

run()
