"""`edge-agent` with Python's cyclic garbage collector off: memory kept alive by a reference cycle
stays held, so a test sees it at once instead of whenever the collector happens to run.

Run as: python -m tests.daemon.agent_without_gc serve ...
"""

from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    gc.disable()
    from edge_agent.cli import main

    sys.exit(main(sys.argv[1:]))
