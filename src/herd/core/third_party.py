"""What herd asks of its libraries before it imports them."""

from __future__ import annotations

import warnings

__all__ = ["quiet_asyncssh_import"]


def quiet_asyncssh_import() -> None:
    """Silence the one warning asyncssh's import raises that users cannot act on.

    asyncssh 2.24 names cryptography's DSA classes at import, and cryptography 47+
    answers with a CryptographyDeprecationWarning (a UserWarning). Exactly that
    one: this message, raised on asyncssh's behalf. Naming cryptography's own class
    would import cryptography; the message and module pin it just as exactly. The
    packages that import asyncssh (``hosts``, ``lab``) call this as they load, so
    the command line's first step, which imports neither, stays without ``re``.
    """
    warnings.filterwarnings(
        "ignore", message="DSA is deprecated", category=UserWarning, module=r"asyncssh\."
    )
