"""Lets `python -m tellusonce` run the command line."""

from tellusonce.cli import entry

entry()
