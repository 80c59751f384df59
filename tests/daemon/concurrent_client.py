"""A client process for concurrency tests: its own segment, alternating frames, checked results."""

from __future__ import annotations

from edge_agent.client import EdgeAgentClient, SharedMemoryBuffer
from tests.daemon.helpers import HEIGHT, WIDTH, anomalous_image, normal_image


def run_client(socket: str, model: str, frames: int, use_shm: bool) -> tuple[int, int]:
    """Returns (correct results, frames). Runs in a separate process."""
    correct = 0
    with EdgeAgentClient(socket) as agent:
        shm = SharedMemoryBuffer.create(WIDTH * HEIGHT * 3) if use_shm else None
        try:
            for frame in range(frames):
                anomalous = frame % 3 == 0
                image = anomalous_image() if anomalous else normal_image()
                result = agent.detect(model, image, shm=shm)
                correct += result.is_anomalous == anomalous
        finally:
            if shm is not None:
                shm.close()
    return correct, frames
