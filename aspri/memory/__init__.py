"""A person's long-term memory: the fold of ``memory:{person}``, its prompt block, and search.

Shared by the engine (prompts, slash commands, session summaries) and the MCP server (the
``memory_*`` tools); it imports only ``schemas`` and ``streams``, like any part reading events.
"""
