"""Run inside the agent's private mount namespace, on its own small tmpfs at /dev/shm, before the
agent starts: the segments a test uses, then a filler that takes every free page.

- `ea-full-frame`: a frame written with tests.daemon.helpers.anomalous_image();
- `ea-full-blank`: a frame-sized segment never written (sparse: it holds no pages);
- `ea-full-mask`: a mask-sized segment never written, for masks that cannot be stored.

Run as: python -m tests.daemon.full_shm_setup
"""

from __future__ import annotations

import errno
import os

from tests.daemon.helpers import HEIGHT, WIDTH, anomalous_image

SIZE = WIDTH * HEIGHT * 3
FRAME, BLANK, MASK = "ea-full-frame", "ea-full-blank", "ea-full-mask"


def create(name: str) -> int:
    fd = os.open(f"/dev/shm/{name}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o660)
    os.ftruncate(fd, SIZE)
    return fd


def main() -> None:
    fd = create(FRAME)
    os.pwrite(fd, anomalous_image().tobytes(), 0)
    for name in (BLANK, MASK):
        os.close(create(name))
    os.close(fd)
    filler = os.open("/dev/shm/ea-full-filler", os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\xff" * 4096
    try:
        while True:
            os.write(filler, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    os.close(filler)
    st = os.statvfs("/dev/shm")
    assert st.f_bavail == 0, st
    print(f"full_shm_setup: /dev/shm is full ({st.f_blocks * st.f_frsize} bytes)", flush=True)


if __name__ == "__main__":
    main()
