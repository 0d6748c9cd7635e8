"""herd: batch host management over SSH and a multi-user FTP server, with one operation log."""

__all__ = ["__version__"]

__version__ = "0.1.0"
