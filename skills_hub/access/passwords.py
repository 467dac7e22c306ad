"""Local passwords: the one doorway to argon2-cffi (argon2id, a memory-hard KDF).

The parameters are OWASP's first recommendation for argon2id (19 MiB, 2 passes, 1 lane):
about 30 ms per hash on a 2-core machine, so a sign-in costs little and a guess a lot.
Hashes made with other parameters still verify and are upgraded at the next sign-in."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import BadRequest, Problem

MIN_LENGTH = 10
MAX_LENGTH = 1024
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# A hash to verify against when the account does not exist, so that the time a failed
# sign-in takes does not tell whether the username is taken.
_DUMMY = _HASHER.hash("not a password of anyone")


def check_strength(password: str, *, username: str = "") -> None:
    """Refuse passwords that are too short, too long, or the username."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(Problem("password", f"shorter than {MIN_LENGTH} characters",
                                "use a longer passphrase, e.g. four unrelated words"))
    if len(password) > MAX_LENGTH:
        problems.append(Problem("password", f"longer than {MAX_LENGTH} characters",
                                "use a shorter passphrase"))
    if username and password.strip().lower() == username.lower():
        problems.append(Problem("password", "the same as the username",
                                "choose a password nobody can guess from your name"))
    if len(set(password)) < 4 and len(password) >= MIN_LENGTH:
        problems.append(Problem("password", "too few different characters",
                                "use a passphrase with varied characters"))
    if problems:
        raise WeakPassword("the password is too weak", problems=problems)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash costs the same time and is False."""
    try:
        return _HASHER.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


class WeakPassword(BadRequest):
    status = 422
    code = "weak_password"
