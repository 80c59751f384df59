"""A separate client process that abuses its own segment: truncates and regrows it in a loop.

Run as: python -m tests.daemon.shm_peer NAME SIZE SECONDS
"""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    name, size, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    fd = os.open(f"/dev/shm/{name.lstrip('/')}", os.O_RDWR)
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    flips = 0
    while time.monotonic() < deadline:
        os.ftruncate(fd, size // 3)
        os.ftruncate(fd, size)
        flips += 1
    os.close(fd)
    print(f"flips {flips}", flush=True)


if __name__ == "__main__":
    main()
