"""`dicom-ops deidentify IN_DIR OUT_DIR`: see exactly what would leave the hospital.

Runs the pipeline's de-identification engine and recipe on a folder, then the PHI egress
check on the result, and prints what happened to each attribute (names of attributes,
never their values). Each folder of DICOM files under IN_DIR is one series; with one
series the output goes straight into OUT_DIR, with several into OUT_DIR/series-001, ...
Without DICOM_OPS_SECRET_KEY a throwaway key is used: the output is then not the one the
pipeline would send (other UIDs, pseudonym and date shift), but de-identified all the same.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dicom_ops.cli import CommandError

PART10_MAGIC_OFFSET = 128


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deidentify", help="de-identify a folder of DICOM files, to inspect what leaves",
        description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of DICOM files")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR",
                        help="new or empty folder for the de-identified files")
    parser.add_argument("--recipe", type=Path,
                        help="deid recipe file (default: DICOM_OPS_DEID_RECIPE)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes to use (default: up to 2)")
    parser.add_argument("--no-egress-check", action="store_true",
                        help="skip the PHI egress check on the output")
    parser.set_defaults(func=_run)


def _is_part10(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            stream.seek(PART10_MAGIC_OFFSET)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def series_folders(in_dir: Path) -> dict[Path, list[Path]]:
    """DICOM Part 10 files under ``in_dir``, grouped by folder, sorted; DICOMDIR left out."""
    groups: dict[Path, list[Path]] = {}
    for folder, subfolders, names in os.walk(in_dir):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        files = [Path(folder, name) for name in sorted(names)
                 if not name.startswith(".") and name.upper() != "DICOMDIR"]
        files = [f for f in files if _is_part10(f)]
        if files:
            groups[Path(folder)] = files
    return groups


def _keys(settings):
    from dicom_ops.deid.keys import DeidKeys

    if settings.secret_key:
        return DeidKeys.from_secret(settings.require_secret_key()), False
    return DeidKeys.throwaway(), True


def _run(args: argparse.Namespace) -> int:
    # deid.deidentify_and_check: the pipeline's own entry point, so what is shown is what
    # the pipeline would send.
    from dicom_ops.config import get_settings
    from dicom_ops.deid.checked import deidentify_and_check
    from dicom_ops.deid.errors import DeidError
    from dicom_ops.deid.recipe import RecipeError, default_cache_dir, load_recipe

    settings = get_settings()
    in_dir, out_dir = args.in_dir.resolve(), args.out_dir.resolve()
    if not in_dir.is_dir():
        raise CommandError(f"{args.in_dir} is not a folder")
    if out_dir == in_dir or out_dir.is_relative_to(in_dir):
        raise CommandError("OUT_DIR must not be inside IN_DIR")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CommandError(f"{args.out_dir} is not empty")
    groups = series_folders(in_dir)
    if not groups:
        raise CommandError(f"no DICOM files (Part 10, with the DICM prefix) under {args.in_dir}")
    try:
        recipe = load_recipe(args.recipe or settings.deid_recipe, cache_dir=default_cache_dir())
    except RecipeError as exc:
        raise CommandError(str(exc)) from None
    keys, throwaway = _keys(settings)

    results = []  # each series is checked on its own: the folders may be different patients'
    for number, files in enumerate(groups.values(), start=1):
        target = out_dir if len(groups) == 1 else out_dir / f"series-{number:03d}"
        try:
            results.append((target, deidentify_and_check(
                [(files, target)], recipe, keys, workers=max(1, args.workers),
                check_egress=not args.no_egress_check,
                search_pixel_data=settings.egress_pixel_search)))
        except DeidError as exc:
            raise CommandError(f"series {number} of {len(groups)}: {exc}") from None

    _print_summary([(target, checked.series[0]) for target, checked in results], recipe, in_dir)
    if throwaway:
        print("key: throwaway (DICOM_OPS_SECRET_KEY is not set): UIDs, pseudonym and date shift "
              "differ from what the pipeline would send")
    if args.no_egress_check:
        return 0
    return _report_egress_check([checked.findings for _, checked in results])


def _print_summary(results, recipe, in_dir: Path) -> None:
    from dicom_ops.deid.engine import ADDED, EMPTIED, KEPT, REMOVED, REPLACED, SHIFTED

    total = sum(len(result.files) for _, result in results)
    print(f"de-identified {total} files in {len(results)} series from {in_dir}")
    for number, (target, result) in enumerate(results, start=1):
        print(f"series {number}: {len(result.files)} files -> {target}")
        print(f"  patient: {result.pseudonym}; dates shifted by {result.date_offset_days} days; "
              f"{len(result.uid_map)} UIDs replaced; {result.private_tags_removed} private "
              "elements removed")
        by_action: dict[str, list[str]] = {}
        for tag, what in sorted(result.actions.items()):
            keyword = recipe.tags.info(tag)[0] or "unknown"
            by_action.setdefault(what, []).append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword}")
        for what in (REPLACED, SHIFTED, EMPTIED, ADDED, REMOVED, KEPT):
            names = by_action.get(what, [])
            if names:
                print(f"  {what} ({len(names)}): {', '.join(names)}")
    recipe.remember()


def _report_egress_check(findings_by_series) -> int:
    failed = False
    for number, findings in enumerate(findings_by_series, start=1):
        if findings:
            failed = True
            print(f"egress check, series {number}: FAILED, the pipeline would send nothing:",
                  file=sys.stderr)
            for finding in findings[:50]:
                print(f"  {finding}", file=sys.stderr)
            if len(findings) > 50:
                print(f"  ... and {len(findings) - 50} more", file=sys.stderr)
        else:
            print(f"egress check, series {number}: passed (no identifier of the original "
                  "patient in the output)")
    return 1 if failed else 0


if __name__ == "__main__":
    from dicom_ops.cli import main

    sys.exit(main(["deidentify", *sys.argv[1:]]))
