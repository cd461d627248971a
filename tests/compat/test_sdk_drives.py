"""Drives through the official SDK, on a machine without blfs."""

from __future__ import annotations

import os
import re

import pytest
from blaxel.core.sandbox.client.errors import UnexpectedStatus

BLFS = "/usr/local/bin/blfs"


async def test_list_is_empty(sandbox):
    assert await sandbox.drives.list() == []


async def test_mount_without_blfs_raises_with_the_501(sandbox):
    if os.path.exists(BLFS):
        pytest.skip("blfs is installed here")
    # 501 is not among the statuses the SDK models for this call: it raises its
    # UnexpectedStatus, which keeps the status and the JSON body.
    with pytest.raises(UnexpectedStatus) as raised:
        await sandbox.drives.mount("data", "mnt/data", read_only=True)
    assert raised.value.status_code == 501
    assert raised.value.body == {"error": f"drive mounting needs {BLFS}, which is not installed in this sandbox"}


async def test_validation_errors_carry_the_message(sandbox):
    with pytest.raises(Exception, match=r"^Mount drive failed: drive name must contain only letters"):
        await sandbox.drives.mount("bad name", "/mnt/data")


async def test_unmount_of_a_directory_that_is_not_mounted(sandbox, sdk_daemon):
    message = f"Unmount drive failed: Failed to unmount drive: path is not a mount point: {sdk_daemon.workdir}"
    with pytest.raises(Exception, match=f"^{re.escape(message)}$"):
        await sandbox.drives.unmount(str(sdk_daemon.workdir))
