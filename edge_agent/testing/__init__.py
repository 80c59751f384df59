"""Small, real model packages built with onnx.helper, for tests, benchmarks and demos."""
