"""The CloudWatch publisher component installs the agent's wheel without its dependencies: it must
import with only the standard library, prometheus_client and awsiotsdk."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

BLOCKED = ("numpy", "grpc", "google", "onnxruntime", "PIL", "grpc_health")


def test_publisher_imports_without_the_agent_runtime():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {BLOCKED!r}:\n"
        "            raise ImportError(name + ' is not in the publisher component')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import edge_agent.observability.cloudwatch as c\n"
        "c.Publisher(lambda: '', lambda t, m: None).tick()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
