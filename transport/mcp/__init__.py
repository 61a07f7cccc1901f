"""The daemon as an MCP server over the Streamable HTTP transport (``/mcp``): sessions and the
JSON-RPC dispatch (:mod:`transport.mcp.server`), the daemon's own tools and resources
(:mod:`transport.mcp.tools`). The route is :mod:`transport.routes.mcp`; docs/mcp.md."""

__all__: list[str] = []
