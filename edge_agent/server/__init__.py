"""The gRPC face of the agent: wire decoding, status codes, servicer and daemon."""
