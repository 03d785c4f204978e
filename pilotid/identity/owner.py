"""``owner_dn``: whose proxy a job must run with, from PanDA's ``prodUserID`` and the queue.

``prodUserID`` comes in many forms: the user's DN, the DN of one of the user's proxies
(``.../CN=proxy``, ``.../CN=limited proxy``, the number of an RFC 3820 proxy), an e-mail
address or a nickname (users who came with tokens), and for production jobs nothing at all
(``NULL``, ``None``, ``no_one``).  A DN is the owner the credential source checks the proxy
against.  Anything else names no one a proxy can be checked against, and the queue's
``jobs_without_dn`` decides: ``refuse`` (the default) fails the job with a
``CredentialError`` before anything is fetched or run; ``queue_proxy`` runs it with the
queue's own proxy file (no owner to check: the site chose that proxy).  No job ever runs with
a proxy checked against someone else's name.
"""

from __future__ import annotations

from typing import Optional

from pilotid.errors import CredentialError
from pilotid.identity.dn import is_dn

#: What production jobs send for "no user" (compared case-insensitively).
NO_USER = ("", "null", "none", "no_one", "noone", "nobody")
REFUSE = "refuse"
QUEUE_PROXY = "queue_proxy"
TOKEN_SUBJECT = "token_subject"  # noqa: S105 - a policy name, no secret


def owner_dn(prod_user_id: Optional[str], jobs_without_dn: str) -> Optional[str]:
    """The DN the job's proxy must belong to, or None to use the queue's own proxy (with
    ``token_subject``: the token whose subject the job names, ``token_owner``).

    ``prod_user_id`` is the job's ``prodUserID`` (None where unset); ``jobs_without_dn``
    the queue's policy (``refuse`` or ``queue_proxy``).  Raises ``CredentialError`` where
    the job names no DN and the policy is ``refuse``.
    """
    text = (prod_user_id or "").strip()
    if is_dn(text):
        return text
    if jobs_without_dn in (QUEUE_PROXY, TOKEN_SUBJECT):
        return None
    if text.lower() in NO_USER:
        what = ("names no user (prodUserID "
                f"{prod_user_id!r}: a production job)" if prod_user_id else
                "names no user (no prodUserID: a production job)")
    else:
        what = (f"names its user by {prod_user_id!r}, not by a DN, so no proxy can be "
                "checked against it")
    raise CredentialError(
        f"the job {what}; this queue refuses such jobs (jobs_without_dn 'refuse'); set "
        "jobs_without_dn to 'queue_proxy' to run them with the queue's own proxy_file")


def token_owner(prod_user_id: Optional[str]) -> Optional[str]:
    """The token identity a job names (``prodUserID`` that is neither a DN nor a production
    job's "no user"), for the token sources to check against the token's subject; None
    otherwise."""
    text = (prod_user_id or "").strip()
    if is_dn(text) or text.lower() in NO_USER:
        return None
    return text
