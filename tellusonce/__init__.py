"""Tell Us Once: a life event registered once reaches every public service entitled to it."""

__version__ = "0.1.0"
