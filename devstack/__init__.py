"""Local stack: the livekit-server build and runner, and the one-command dev launcher."""
