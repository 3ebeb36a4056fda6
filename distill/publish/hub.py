"""The publish stage's side of the Hugging Face Hub: who we are, pushing a folder, retrying, redacting.

The token is never handled here: ``huggingface_hub`` reads ``HF_TOKEN`` (or the saved login) itself on every
request, so no distill object holds it and nothing distill writes can contain it. ``distill.secrets.redact`` removes
secret values from any text we print or write anyway, in case a library message or a command line carries one.

Pushes are idempotent: ``upload_folder`` asks the Hub which files it already has (same content) and skips
them, LFS objects already stored are not sent again, and a push with nothing new makes no commit. So the
retry of a failed push -- or the rerun of a killed one -- completes the release without re-uploading or
leaving an empty commit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from distill.errors import DistillError
from distill.secrets import redact

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_NAMES = {"TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError"}
T = TypeVar("T")


def hub_api():
    """An HfApi on ``HF_ENDPOINT`` as it is now (huggingface_hub reads the variable once, at import)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def check_token() -> str:
    """Preflight for a push: a token is there and the Hub accepts it. Returns the user name."""
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise DistillError(
            "publishing needs the Hub but HF_HUB_OFFLINE is set: unset it for `distill publish`, or render "
            "only with --dry-run (release.dry_run=true)"
        )
    if not get_token():
        raise DistillError(
            "publishing needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login` "
            "(or render only: `distill publish RECIPE --dry-run`, release.dry_run=true)"
        )
    api = hub_api()
    return with_retries(lambda: api.whoami(), f"checking the token with {api.endpoint}")["name"]


def check_repo_id(repo_id: str, field: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("expected namespace/name")
    except HFValidationError:
        raise DistillError(
            f"{field}: {repo_id!r} is not a valid Hub repo id; expected namespace/name of letters, digits, "
            "'-', '_' and '.' (at most 96 characters)"
        ) from None


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    repo_type: str,
    private: bool,
    revision: str,
    message: str,
    description: str,
) -> dict[str, Any]:
    """Create the repo (and branch) if needed and commit the folder's files; transient failures are retried."""
    api = hub_api()
    what = f"pushing {folder.name} to {repo_type} repo {repo_id}"
    url = with_retries(
        lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True), what
    )
    if revision != "main":
        with_retries(
            lambda: api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True), what
        )
    commit = with_retries(
        lambda: api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type=repo_type,
            revision=revision,
            commit_message=message,
            commit_description=description,
        ),
        what,
    )
    return {"repo": repo_id, "type": repo_type, "url": str(url), "revision": revision, "commit": commit.oid}


RETRY_ATTEMPTS = 8
RETRY_FIRST_DELAY_S = 1.0  # then doubling, at most a minute: a Hub hiccup rarely outlasts a few minutes


def with_retries(call: Callable[[], T], what: str) -> T:
    """``call()``, retried with exponential backoff on transient failures (5xx, 429, dropped connections);
    anything else -- or the last failure -- becomes a one-line error naming ``what`` failed."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == RETRY_ATTEMPTS - 1:
                raise DistillError(f"{what}: {error_line(exc)}") from None
            delay = min(RETRY_FIRST_DELAY_S * 2**attempt, 60.0)
            print(f"[distill] publish: {what}: {error_line(exc)}; retrying in {delay:.0f}s", flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def is_transient(exc: BaseException | None) -> bool:
    """A failure worth retrying: an HTTP 5xx/429/408 or a network error, anywhere in the cause chain."""
    seen = 0
    while exc is not None and seen < 8:
        if type(exc).__name__ == "OfflineModeIsEnabled":  # a setting, not a network failure
            return False
        response = getattr(exc, "response", None)
        if getattr(response, "status_code", None) in _TRANSIENT_STATUS:
            return True
        if isinstance(exc, ConnectionError | TimeoutError) or _TRANSIENT_NAMES & {
            c.__name__ for c in type(exc).__mro__
        }:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def error_line(exc: BaseException) -> str:
    """The Hub's own message on one line (status and server text), with secrets redacted."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    server = getattr(exc, "server_message", None)
    hint = {
        401: "the token was rejected: check HF_TOKEN (or `hf auth login`)",
        403: "the token has no write access there: use a namespace you can write to (release.namespace) "
        "or a token with write scope for it",
        404: "not found (or not visible to this token)",
    }.get(status)
    parts = [f"HTTP {status}" if status else text, (server or text) if status else None, hint]
    return redact("; ".join(p for p in parts if p))
