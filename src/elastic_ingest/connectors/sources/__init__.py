"""Built-in sources: mongodb, s3, directory; plus `memory`, a list-backed source for tests."""
