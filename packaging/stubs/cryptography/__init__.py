"""Stand-in for `cryptography` in the frozen binary only.

mcp's high-level `MCPServer` imports it at module level (`mcp.server.request_state`
seals request state with AES-GCM), and `mcp.server` imports `MCPServer`. The daemon
uses only the low-level `Server`, so the real package (11.6 MB extracted at every
start, 4 MB of the binary) is replaced by names that fail loudly if ever used.
"""


class StubUsed(RuntimeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"cryptography.{name} is not available in the sandbox-api binary")


def stub_class(name: str) -> type:
    def refuse(self, *args: object, **kwargs: object) -> None:
        raise StubUsed(name)

    return type(name, (), {"__init__": refuse})
