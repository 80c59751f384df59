"""The least a Python gRPC server can add to a model call: the floor under the agent's overhead.

A grpc.aio server on a Unix socket with the agent's message options and one unary method whose
request and response are empty and whose handler runs `session.run` on an image already in this
process's memory: no protobuf fields, no validation, no shared memory, no model lifecycle. Two
handlers: `/Floor/Loop` runs the model on the event loop thread (no thread hop, so no other call
could be served meanwhile: no real agent can do this), `/Floor/Thread` on a worker thread, as the
agent does. `bench/agent_overhead.py` starts it; agent minus floor is the agent's own cost.

Run: python bench/grpc_floor_server.py SOCKET_PATH PACKAGE_DIR THREADS
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

from edge_agent.model_package import INPUT_IMAGE
from edge_agent.model_package import load as load_package
from edge_agent.runtime import RuntimeOptions, open_runtime
from edge_agent.server.daemon import ServeConfig


def bench_image(width: int, height: int) -> np.ndarray:
    """The frame every path of the bench runs on (same seed here and in agent_overhead.py)."""
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


async def serve(socket_path: str, package_dir: str, threads: int) -> None:
    package = load_package(package_dir)
    runtime = open_runtime("cpu", package.graph_path, RuntimeOptions(intra_op_threads=threads))
    session = runtime._session  # the raw ONNX Runtime session, as in the baseline
    image = bench_image(package.manifest.width, package.manifest.height)
    feeds = {INPUT_IMAGE: image}
    pool = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()

    def run() -> bytes:
        session.run(None, feeds)
        return b""

    async def on_loop(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return run()

    async def on_thread(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await loop.run_in_executor(pool, run)

    message_bytes = ServeConfig().max_message_mb << 20
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", message_bytes),
            ("grpc.max_send_message_length", message_bytes),
        ]
    )
    handlers = {
        "Loop": grpc.unary_unary_rpc_method_handler(on_loop),
        "Thread": grpc.unary_unary_rpc_method_handler(on_thread),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("Floor", handlers),))
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3])))
