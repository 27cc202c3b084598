"""The contract shared by the token server, the agent and the tools."""
