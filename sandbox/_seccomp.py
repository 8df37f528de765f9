"""A tiny seccomp filter for bwrap: no new user namespaces inside the sandbox.

When bwrap runs as root it cannot use a user namespace (the command is dropped to a plain
unprivileged uid instead), so ``--disable-userns`` is not available; this filter does the same
job: ``unshare``/``clone`` with CLONE_NEWUSER fail with EPERM, ``clone3`` (whose flags a filter
cannot read) fails with ENOSYS so libc falls back to ``clone``, and syscalls of a foreign ABI
(i386 via int 0x80, x32) are refused because their numbers differ.
"""

from __future__ import annotations

import errno
import functools
import platform
import struct

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000

# machine -> (AUDIT_ARCH, unshare, clone, clone3)
_ARCHES = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}

# seccomp_data: nr at 0, arch at 4, args[0] at 16 (low word first on little-endian)
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16


@functools.cache
def userns_filter() -> bytes | None:
    """The BPF program as ``struct sock_filter[]`` bytes, or None on an unknown architecture."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    audit_arch, nr_unshare, nr_clone, nr_clone3 = arch
    # (code, k, jump-true label, jump-false label); labels resolve to relative offsets below.
    prog: list[tuple[int, int, str | None, str | None]] = [
        (_LD_W_ABS, _OFF_ARCH, None, None),
        (_JEQ, audit_arch, None, "nosys"),
        (_LD_W_ABS, _OFF_NR, None, None),
        (_JGE, _X32_BIT, "nosys", None),
        (_JEQ, nr_clone3, "nosys", None),
        (_JEQ, nr_unshare, "flags", None),
        (_JEQ, nr_clone, "flags", None),
        (_RET, _ALLOW, None, None),
        (_LD_W_ABS, _OFF_ARG0, None, None),  # flags
        (_JSET, _CLONE_NEWUSER, None, "allow"),
        (_RET, _ERRNO | errno.EPERM, None, None),
        (_RET, _ALLOW, None, None),  # allow
        (_RET, _ERRNO | errno.ENOSYS, None, None),  # nosys
    ]
    labels = {"flags": 8, "allow": 11, "nosys": 12}

    def offset(i: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - (i + 1)

    return b"".join(
        struct.pack("=HBBI", code, offset(i, jt), offset(i, jf), k)
        for i, (code, k, jt, jf) in enumerate(prog)
    )
