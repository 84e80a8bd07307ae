"""Embedded default data: our own generators writing the real on-disk formats, cached."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from beamc.data.synth.street import GENERATOR_VERSION, StreetConfig, generate
from beamc.recipe import fingerprint
from beamc.runs import cache_root


def cached_street(cfg: StreetConfig) -> tuple[Path, str, str]:
    """The street scenario pair for `cfg`, generated once into the cache (atomically: a
    half-written folder from a killed run is never mistaken for a finished one)."""
    root = cache_root() / "deepmimo"
    folder = root / f"street-{fingerprint(cfg)}-v{GENERATOR_VERSION}"
    if not (folder / ".complete").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".street-", dir=root))
        try:
            names = generate(cfg, tmp)
            (tmp / ".complete").write_text(" ".join(names) + "\n")
            if folder.exists():
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    sub6_name, mmw_name = (folder / ".complete").read_text().split()
    return folder, sub6_name, mmw_name


def cached_deepsense(cfg) -> Path:
    """The DeepSense-format V2I scenario for `cfg` (a DeepSenseSynthConfig), generated once
    into the cache and reused; `generate` builds it under a temporary name and renames it,
    so a killed run never leaves a half-written folder that looks finished."""
    from beamc.data.synth.v2i import GENERATOR_VERSION as V2I_VERSION
    from beamc.data.synth.v2i import generate as generate_v2i

    folder = cache_root() / "deepsense-synth" / f"v2i-{fingerprint(cfg)}-v{V2I_VERSION}"
    if not folder.exists():
        try:
            generate_v2i(cfg, folder, progress=True)
        except FileExistsError:  # another process finished the same scenario first
            pass
    return folder
