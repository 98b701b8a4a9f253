"""The bottom layer every component kind builds on: the generic registry (with entry-point
discovery), the strict-parameters base, and the one-line messages for bad names and values.
Imports nothing of this project but ``errors``, and no torch."""
