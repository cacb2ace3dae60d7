"""Lets `python -m tellusonce` run the command line."""

from tellusonce.cli import main

raise SystemExit(main())
