"""batchai: the az batchai command line, made real again.

This module holds the version only and imports nothing, so `batchai --help` and shell
completion stay fast.
"""

__version__ = "0.1.0"
