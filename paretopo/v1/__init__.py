"""Generated gRPC code for the `paretopo.v1` protobuf package. Do not edit."""
