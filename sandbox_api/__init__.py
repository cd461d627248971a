"""sandbox-api: the in-sandbox daemon agents drive over HTTP and MCP."""

__version__ = "0.1.0"
