"""The packager tests' small real model packages, shared with the device-side component tests."""

from tests.unit.packager.conftest import blob_model

__all__ = ["blob_model"]
