"""The committed stubs must match proto/edge-agent.proto, and the proto must match AWS's numbering."""

from __future__ import annotations

import subprocess
import sys

from google.protobuf import descriptor_pb2

from edge_agent.protocol import edge_agent_pb2 as pb
from tests.conftest import REPO


def test_committed_stubs_match_the_proto(tmp_path):
    out = tmp_path / "descriptor.bin"
    code = (
        "import sys; sys.path.insert(0, 'tools'); import generate_stubs as g; from grpc_tools import protoc;"
        f"sys.exit(protoc.main(g.protoc_args('--descriptor_set_out={out}')))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    for message in fresh.message_type:  # protoc adds json_name here; the Python stub omits it
        for field in message.field:
            field.ClearField("json_name")
    assert committed == fresh, "stubs are stale: run python tools/generate_stubs.py"


def test_wire_numbers_are_those_of_the_aws_proto():
    fields = {
        (message.name, field.name): field.number
        for message in pb.DESCRIPTOR.message_types_by_name.values()
        for field in message.fields
    }
    assert pb.DESCRIPTOR.package == "AWS.LookoutVision"
    assert fields[("DetectAnomalyResult", "anomaly_score")] == 5
    assert fields[("DetectAnomalyResult", "anomaly_threshold")] == 6
    assert fields[("AnomalyMaskParams", "shared_memory_handle")] == 2
    assert fields[("Bitmap", "byte_data")] == 3 and fields[("Bitmap", "shared_memory_handle")] == 4
    assert [v.name for v in pb.ModelStatus.DESCRIPTOR.values] == [
        "STOPPED",
        "STARTING",
        "RUNNING",
        "FAILED",
        "STOPPING",
    ]
    methods = [m.name for m in pb.DESCRIPTOR.services_by_name["EdgeAgent"].methods]
    assert methods == ["DetectAnomalies", "DescribeModel", "ListModels", "StartModel", "StopModel"]


def test_committed_stubs_load_with_every_supported_runtime():
    """Stubs from grpcio-tools >= 1.63 pin protobuf and grpcio to their own release at import time
    (1.85's need protobuf >= 7.35, which Python 3.8 cannot install): the committed ones must not."""
    stubs = REPO / "edge_agent" / "protocol"
    gencode = (stubs / "edge_agent_pb2.py").read_text()
    service = (stubs / "edge_agent_pb2_grpc.py").read_text()
    assert "ValidateProtobufRuntimeVersion" not in gencode, "regenerate with grpcio-tools 1.62.x"
    assert "GRPC_GENERATED_VERSION" not in service, "regenerate with grpcio-tools 1.62.x"
    assert "# Protobuf Python Version: 4.25." in gencode
