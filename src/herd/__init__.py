"""herd: batch host management over SSH and a multi-user FTP server, with one operation log."""

import warnings

__all__ = ["__version__"]

__version__ = "0.1.0"

# Every herd process (the CLI, transfer workers, the lab's SSH server) imports this
# package before asyncssh. asyncssh 2.24 names cryptography's DSA classes at import,
# and cryptography 47+ answers with a CryptographyDeprecationWarning (a UserWarning)
# that users cannot act on. Silence exactly that one: this message, raised on
# asyncssh's behalf. Naming cryptography's own class here would import cryptography
# into every `herd --help`; the message and module pin it just as exactly.
warnings.filterwarnings(
    "ignore", message="DSA is deprecated", category=UserWarning, module=r"asyncssh\."
)
