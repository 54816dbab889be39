"""Example sources that live outside the `connectors` package (see docs/writing-a-source.md)."""
