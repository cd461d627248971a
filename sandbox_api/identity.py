"""The workload user: who processes run as and who owns what the API writes.

Enabled by `--user SPEC` or `BL_SANDBOX_USER=SPEC` with `BL_SANDBOX_USER_ENABLED=true`;
SPEC is Docker's USER syntax (`name`, `uid`, `name:group`, `uid:gid`). The daemon keeps
its own rights: children get the user's uid, gid and groups at exec; filesystem work
runs in a worker thread whose fsuid/fsgid are switched to the user for the duration
(per thread in Linux, so the event loop and other threads stay privileged), so the
kernel checks permissions as the user and what is created belongs to it.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .linux import _native

T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def environment(self) -> dict[str, str]:
        """What a login as this user would set; overrides the request's own values."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


class IdentityError(ValueError):
    pass


def resolve(spec: str) -> Identity:
    """Docker USER syntax to an identity; root and unknown users are refused."""
    user_part, _, group_part = spec.strip().partition(":")
    if not user_part:
        raise IdentityError(f"invalid user {spec!r}")
    try:
        entry = pwd.getpwuid(int(user_part)) if user_part.isdigit() else pwd.getpwnam(user_part)
    except (KeyError, OverflowError):
        if not user_part.isdigit():
            raise IdentityError(f"unknown user {user_part!r}") from None
        entry = None  # a bare uid without a passwd entry, as Docker allows
    uid = int(user_part) if entry is None else entry.pw_uid
    if group_part:
        try:
            gid = int(group_part) if group_part.isdigit() else grp.getgrnam(group_part).gr_gid
        except KeyError:
            raise IdentityError(f"unknown group {group_part!r}") from None
    else:
        gid = entry.pw_gid if entry is not None else uid
    if uid == 0:
        raise IdentityError(f"the workload user must not be root ({spec!r})")
    name = entry.pw_name if entry is not None else str(uid)
    groups = tuple(sorted(set(os.getgrouplist(name, gid)))) if entry is not None else (gid,)
    home = entry.pw_dir if entry is not None and entry.pw_dir else "/"
    return Identity(name, uid, gid, groups, home)


def _switch(uid: int, gid: int) -> tuple[int, int]:
    """Set this thread's fsuid/fsgid; returns the previous ones. Group first: once the
    fsuid is unprivileged, changing the fsgid would no longer be allowed."""
    previous_gid = _native.setfsgid(gid)
    previous_uid = _native.setfsuid(uid)
    # setfsuid reports the previous value even when it fails: ask again to check.
    if _native.setfsuid(uid) != uid or _native.setfsgid(gid) != gid:
        _native.setfsuid(previous_uid)
        _native.setfsgid(previous_gid)
        raise PermissionError(f"cannot act as uid {uid} gid {gid} (the daemon lacks the rights)")
    return previous_uid, previous_gid


def call_as(identity: Identity | None, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in this (worker) thread with the identity's filesystem credentials."""
    if identity is None:
        return fn(*args)
    previous_uid, previous_gid = _switch(identity.uid, identity.gid)
    try:
        return fn(*args)
    finally:
        _native.setfsuid(previous_uid)
        _native.setfsgid(previous_gid)


async def run_as(identity: Identity | None, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread, as the identity (the event loop never switches)."""
    if identity is None:
        return await asyncio.to_thread(fn, *args)
    return await asyncio.to_thread(call_as, identity, fn, *args)
