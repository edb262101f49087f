"""One redactor for every message: what an error, a reason, a notice or a status line may
carry of a secret is replaced by `***` before anyone sees it.

It knows three things: the password (or token) of any URL (`scheme://user:password@host`,
`scheme://token@host`: the whole user part goes), a signed URL's signature, and the values
this process holds as secrets: the AWS, Azure and Google secret variables, the secret
storage options in MMSEARCH_STORAGE_OPTIONS, and the passwords in the URLs of the
environment (an endpoint or a proxy written `http://user:password@host`), so a password
is hidden even where a message shows it outside its URL.

`MmsearchError` passes its message through here when it is made, and `errors.one_line`
(every failure reason, every internal error) too: a door never has to remember to.

Light: os and re only, its patterns compiled on first use (the client's fast path imports
it through `errors`, and most runs never make a message)."""

from __future__ import annotations

import os
import re

# scheme://userinfo@ (userinfo: everything before the last @ of the authority)
_USERINFO = r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s?#@]*(?:@[^/\s?#@]*)*@"
_SIGNATURE = r"(?i)(signature|sig|x-amz-security-token|x-amz-credential)=[^&\s]+"
# Storage-option and environment names whose values are secrets (matched case-blind).
SECRET_NAME = r"(?i)secret|token|password|credential|account_key|sas|private"
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)
# Variables whose values may be URLs with a password in them.
_URL_ENV = ("AWS_", "AZURE_", "GOOGLE_", "MMSEARCH_", "HF_", "HTTP_PROXY", "HTTPS_PROXY")
_URL_ENV_EXACT = ("http_proxy", "https_proxy", "all_proxy", "ALL_PROXY")
_PASSWORD = r"(?i)\b[a-z][a-z0-9+.\-]*://([^/\s?#]*)@"
STORAGE_OPTIONS = "MMSEARCH_STORAGE_OPTIONS"


def storage_option_values() -> dict[str, str]:
    """MMSEARCH_STORAGE_OPTIONS as names and values; {} when unset or not a JSON object
    (saying so is for whoever uses them: `storage.remote`)."""
    raw = os.environ.get(STORAGE_OPTIONS, "").strip()
    if not raw:
        return {}
    import json

    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def secrets() -> list[str]:
    """Every secret value this process could put into a message."""
    found = [os.environ.get(name, "") for name in SECRET_ENV]
    options = storage_option_values()
    found += [v for k, v in options.items() if _compiled(SECRET_NAME).search(k)]
    urls = [v for k, v in os.environ.items() if k.startswith(_URL_ENV) or k in _URL_ENV_EXACT]
    for value in [*urls, *options.values()]:
        if "@" not in value:
            continue
        for userinfo in _compiled(_PASSWORD).findall(value):
            password = userinfo.partition(":")[2] or userinfo
            found.append(password)
            if "%" in password:
                from urllib.parse import unquote

                found.append(unquote(password))
    return [s for s in found if len(s) >= 4]


def redact(text: str) -> str:
    """`text` with every known secret, every URL's user part and every signature replaced
    by `***`."""
    if "://" in text and "@" in text:
        text = _compiled(_USERINFO).sub(r"\1***@", text)
    for secret in sorted(set(secrets()), key=len, reverse=True):
        text = text.replace(secret, "***")
    if "=" in text:
        text = _compiled(_SIGNATURE).sub(r"\1=***", text)
    return text


def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)  # re keeps its own cache of compiled patterns
