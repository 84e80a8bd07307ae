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
