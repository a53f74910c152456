"""The plumbing: settings and flags, run folders, checkpoints, what is chosen by measurement (precision, attention kernel,
torch.compile), DDP, exit codes and Ctrl-C, freed memory kept, atomic writes, Hugging Face folders and model cards, where
the judges come from, the generators' set-up, the explorer page's server side. A student reading the lectures never has to
open it, and no lecture file imports it (docs/ARCHITECTURE.md)."""
