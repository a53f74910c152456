"""The plumbing: settings and flags, run folders, checkpoints, precision choice, DDP, exit codes and Ctrl-C, atomic writes,
Hugging Face folders, where the judges come from, the generators' set-up. A student reading the lectures never has to
open it, and no lecture file imports it (docs/ARCHITECTURE.md)."""
