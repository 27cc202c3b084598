"""Contract shared by the token server, the agent and the tools: metadata, languages, RPC protocol."""
