"""microseis-edge station side: the daemon, its trigger, preprocessing and the `microseis` CLI.

Never imports torch, ``trainer`` or ``export``: a station installs only the lean ``edge``
dependencies.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    #: the one version string: the installed distribution's (pyproject.toml ``version``)
    __version__ = version("microseis-edge")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

del PackageNotFoundError, version
