"""The front doors: the CLI, its fast path and server, the web UI, MCP, and their renderers."""
