"""Device side of the Greengrass components: the helpers their lifecycle steps run on the device.

    model          a model component's install/start/link/unlink steps (`python -m edge_agent.component.model`)
    agent_install  the agent component's offline install from its wheelhouse (stdlib only: it runs
                   before this package is installed, shipped in the component's ZIP as install.py)

Everything here runs with the agent's Python on the device: CPython 3.8 and later, and never
imports yaml, onnx, torch or the workstation's packaging job.
"""
