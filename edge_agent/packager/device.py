"""Moved to `edge_agent.component.model`; this name stays because published model recipes run
`python -m edge_agent.packager.device ...` (packaging/templates/model-component.json)."""

from __future__ import annotations

import sys

from edge_agent.component.model import main

if __name__ == "__main__":
    sys.exit(main())
