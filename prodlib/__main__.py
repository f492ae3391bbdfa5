"""Command line: ``python -m prodlib run --profile smoke`` (what ``make book`` calls) and helpers.
Explained in the *Reproduce it yourself* chapter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prodlib.config import PROFILES, ProfileError, default_profile_name


def _overrides(pairs: list[str]) -> dict[str, str]:
    if bad := [pair for pair in pairs if "=" not in pair]:
        raise ProfileError(f"--set takes FIELD=VALUE, got {bad[0]!r} (e.g. --set text_epochs=2)")
    return {key.strip(): value.strip() for key, value in (pair.split("=", 1) for pair in pairs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prodlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the notebooks with papermill and build the book")
    p_run.add_argument("--profile", default=default_profile_name(),
                       help=f"one of {', '.join(PROFILES)} (default: $PRODLIB_PROFILE or smoke)")
    p_run.add_argument("--force", action="store_true", help="rerun notebooks even when their inputs are unchanged")
    p_run.add_argument("--no-book", action="store_true", help="execute the notebooks only")
    p_run.add_argument("--only", action="append", default=[], metavar="NN",
                       help="run only notebooks whose name starts with this (repeatable), e.g. --only 02")
    p_run.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a profile field, e.g. --set text_epochs=2")
    p_run.add_argument("--run-dir", type=Path, default=None, help="root of run folders (default ./runs)")
    p_run.add_argument("--run-name", default=None, metavar="NAME",
                       help="folder of this experiment under runs/experiments (default: made from the --set values)")
    p_run.add_argument("--build-root", type=Path, default=None,
                       help="folder that receives _build/ (default: the repository root)")
    sub.add_parser("profiles", help="list the profiles and their descriptions")
    args = parser.parse_args(argv)

    if args.command == "profiles":
        for name, prof in PROFILES.items():
            print(f"{name:8s} {prof.description}")
        return 0

    from prodlib.pipeline import PipelineError, run

    try:  # run() checks the profile and overrides before it executes anything
        run(args.profile, run_dir=args.run_dir, build_root=args.build_root, force=args.force,
            overrides=_overrides(args.set), book=not args.no_book, only=args.only, name=args.run_name)
    except (ProfileError, PipelineError, OSError) as exc:  # a message, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ProfileError) else 1
    except KeyboardInterrupt:
        print("interrupted; the next run resumes after the last finished notebook", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
