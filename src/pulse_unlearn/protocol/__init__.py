"""The PULSE protocol: the scenarios and their sets, the runner, and its checkpoints (resume)."""
