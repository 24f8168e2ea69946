"""microseis-edge station side: the daemon, its trigger, preprocessing and the `microseis` CLI.

Never imports torch, ``trainer`` or ``export``: a station installs only the lean ``edge``
dependencies.
"""
__version__ = "0.1.0"
