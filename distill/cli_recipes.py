"""`distill validate`, `distill recipes` and `distill init`: the commands about recipe files themselves
(checking one, listing the built-in ones, copying one to edit). Recipe loading lives in distill.recipe and
distill.recipe_files; this module only parses and prints."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml

from distill import recipe_files
from distill.errors import DistillError


def add_validate_command(sub, add_recipe_args) -> None:
    validate = sub.add_parser(
        "validate",
        help="check a recipe without running anything",
        description="Load and type-check a recipe (and overrides), then run the same preflight checks as "
        "`distill run` (data, models, students, eval tasks, benchmark files, run dir, prompt lengths); "
        "print a summary.",
    )
    add_recipe_args(validate)
    validate.add_argument(
        "--schema-only", action="store_true", help="only type-check the recipe; skip the preflight checks"
    )
    validate.add_argument(
        "--resolved",
        "--show-resolved",
        action="store_true",
        help="print the recipe as it runs (merged over its base: files, overrides applied, every default "
        "filled in) as YAML, itself a valid recipe; no preflight",
    )


def add_recipe_file_commands(sub, debug_help: str) -> None:
    recipes = sub.add_parser(
        "recipes",
        help="list the built-in recipes (run one by name: distill run quickstart)",
        description="List the recipes shipped with distill: name, purpose and hardware, from each file's "
        "leading comment.",
    )
    recipes.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    init = sub.add_parser(
        "init",
        help="write an editable copy of a recipe into the current folder",
        description="Write NAME.yaml into the current folder: a copy of a built-in recipe (or a recipe file) "
        "with name: NAME, comments kept and data paths made to work from here. Never overwrites a file.",
    )
    init.add_argument("name", metavar="NAME", help="the new recipe's name (and file name: NAME.yaml)")
    init.add_argument(
        "--from",
        dest="source",
        default="quickstart",
        metavar="RECIPE",
        help="built-in recipe name or recipe file to copy (default: quickstart; see distill recipes)",
    )
    init.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)


def validate(recipe, args: argparse.Namespace) -> int:
    """The schema, then (unless --schema-only) the preflight of every stage, as `distill run` would."""
    if args.resolved:
        print(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True), end="")
        return 0
    report = None
    if not args.schema_only:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from distill.pipeline import plan, preflight

        report = preflight(recipe, {spec.name.split(":")[0] for spec in plan(recipe)})
    students = ", ".join(s.name for s in recipe.students) or "none"
    teacher = f"{recipe.teacher.model} ({recipe.teacher.backend})" if recipe.teacher else "none"
    print(
        f"{args.recipe}: ok - run '{recipe.name}' -> {recipe.run_path()}; teacher {teacher}; "
        f"students: {students}; eval: {', '.join(recipe.eval.tasks)}"
    )
    if report:
        notes = "".join(f"; {note}" for note in report.notes)
        print(f"preflight: ok - {', '.join(report.stages)} checked in {report.seconds:.1f}s{notes}")
        if report.unchecked:  # never passed silently: say what could not be checked before running
            print(f"preflight: not checked - {'; '.join(report.unchecked)}")
    return 0


def list_recipes() -> int:
    """`distill recipes`: each built-in recipe's name, purpose and hardware (its leading comment)."""
    paths = sorted(recipe_files.builtin_dir().glob("*.yaml"))
    width = max((len(p.stem) for p in paths), default=0)
    for path in paths:
        purpose, hardware = recipe_files.summary(path)
        print(f"{path.stem:<{width}}  {purpose}")
        if hardware:
            print(f"{'':<{width}}  hardware: {hardware}")
    print(
        f"\nrun one: distill run NAME; edit a copy: distill init MY-NAME --from NAME ({recipe_files.builtin_dir()})"
    )
    return 0


def init_recipe(args: argparse.Namespace) -> int:
    """`distill init NAME --from RECIPE`: an editable copy in the current folder, checked before it is kept."""
    from distill.recipe import load_recipe

    source = recipe_files.find_recipe(args.source)
    if not source.is_file():
        raise DistillError(
            f"--from {args.source}: no such recipe file{recipe_files.not_found_hint(args.source)}"
        )
    target = recipe_files.copy_recipe(source, args.name.removesuffix(".yaml"), Path.cwd())
    try:
        recipe = load_recipe(target)
    except DistillError:
        target.unlink()
        raise
    print(f"wrote {target.name} (from {source}); run it: distill run {target.name}  -> {recipe.run_path()}")
    return 0
