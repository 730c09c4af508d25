"""Schemathesis hooks for the fuzz run (SCHEMATHESIS_HOOKS): tus bodies are raw bytes."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
