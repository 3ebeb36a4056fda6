"""Only what pyproject.toml cannot say: the top-level recipes/ folder (the built-in recipes and the
quickstart's data) ships inside the wheel as the package data of ``distill.recipes``, so that a pip user
gets `distill run quickstart` and `distill recipes`; the folder itself stays where the layout puts it."""

from setuptools import find_namespace_packages, setup

RECIPES = {"distill.recipes": "recipes"}
packages = find_namespace_packages(include=["distill*", "teacher*", "student*", "eval*"])
recipes = [f"distill.{name}" for name in find_namespace_packages(include=["recipes*"])]

setup(packages=[*packages, *recipes], package_dir=RECIPES)
