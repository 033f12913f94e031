"""The MCP server: tools for the model that call the gateways' REST APIs."""
