"""The pretrained-weights registry: manifest, checksums, cache and downloads.

``weights/manifest.json`` lists every pretrained ``arch.tag`` with its file, sha256, size,
download URL(s), builder kwargs and a card (dataset, preprocessing, class names, licence, the
exact training command, epochs, wall time, machine, measured accuracy).

:func:`resolve` finds a file in this order, always checking the pinned sha256:
1. the file shipped in the weights folder (``weights/`` of the source tree, or
   ``$ATTENTION_ZOO_WEIGHTS``);
2. the user's cache (``$ATTENTION_ZOO_HOME``, default ``$KERAS_HOME/attention_zoo`` or
   ``~/.keras/attention_zoo``);
3. a download with ``keras.utils.get_file`` into a private temporary directory; only a file
   with the right hash is moved (atomically) into the cache, so a dropped connection or a
   wrong file never leaves anything that a later load would trust.
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import keras

from zoo import files, registry
from zoo.errors import ZooError

MANIFEST_NAME = "manifest.json"


class WeightsError(ZooError, RuntimeError):
    """A pretrained file could not be found, downloaded or verified."""


def weights_dir():
    """The folder holding ``manifest.json`` and the shipped weight files: ``$ATTENTION_ZOO_WEIGHTS``
    (which must then hold a manifest), else ``weights/`` of a source tree, else the installed copy."""
    override = os.environ.get("ATTENTION_ZOO_WEIGHTS")
    if override:
        if not (Path(override) / MANIFEST_NAME).is_file():
            raise WeightsError(f"ATTENTION_ZOO_WEIGHTS={override} has no {MANIFEST_NAME}: point it at a folder "
                               "holding the manifest and the weight files, or unset it")
        return Path(override)
    candidates = [Path(__file__).resolve().parent.parent / "weights",
                  Path(sys.prefix) / "share" / "attention-zoo" / "weights"]
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).exists():
            return candidate
    return candidates[0]


def cache_dir():
    """Where downloaded weights are kept."""
    if os.environ.get("ATTENTION_ZOO_HOME"):
        return Path(os.environ["ATTENTION_ZOO_HOME"])
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(keras_home) / "attention_zoo"


def load_manifest():
    path = weights_dir() / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path} is not valid JSON ({err}); restore it from the package") from None


def pretrained_names():
    return sorted(load_manifest(), key=registry.natural_key)


registry.add_pretrained_source(pretrained_names)


def aliases():
    """Old pretrained names that still load: ``{alias: current name}``."""
    return {alias: name for name, entry in load_manifest().items() for alias in entry.get("aliases", ())}


def manifest_entry(name):
    """The manifest entry of ``arch.tag`` (or of an old alias of it); a bare ``arch`` picks its
    default (first listed) tag."""
    manifest = load_manifest()
    name = aliases().get(name, name)
    arch, tag = registry.split_name(name)
    if tag is None:
        tagged = [n for n, e in manifest.items() if e["arch"] == arch]
        default = [n for n in tagged if manifest[n].get("default")] or tagged
        if default:
            name = default[0]
        elif arch in registry.list_models():
            raise ValueError(
                f"{arch!r} has no pretrained weights; use zoo.build({arch!r}, num_classes=...) for a fresh "
                f"model. Pretrained: {', '.join(pretrained_names()) or 'none'}"
            )
    if name not in manifest:
        raise registry.unknown_name_error(name, list(manifest) + registry.list_models(), "pretrained model")
    return {"name": name, **manifest[name]}


def is_offline():
    """Whether ``ATTENTION_ZOO_OFFLINE`` forbids network access."""
    return os.environ.get("ATTENTION_ZOO_OFFLINE", "") not in ("", "0")


def check_backbone_weights(backbone_weights, file_name):
    """Refuse a ``keras.applications`` download of `file_name` when offline and not cached."""
    if backbone_weights != "imagenet" or not is_offline():
        return
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    cached = Path(keras_home) / "models" / file_name
    if not cached.is_file():
        raise WeightsError(f"ATTENTION_ZOO_OFFLINE is set and backbone_weights='imagenet' would download {file_name}; "
                           f"place it at {cached} or pass backbone_weights='/path/to/{file_name}'")


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def has_hash(path, sha256):
    return Path(path).is_file() and sha256_of(path) == sha256


def resolve(name, offline=None):
    """Local path of the verified weight file of pretrained `name` (see module docstring).

    ``offline=True`` (or ``ATTENTION_ZOO_OFFLINE=1``) never touches the network.
    """
    entry = manifest_entry(name)
    filename, sha256 = entry["file"], entry["sha256"]
    shipped = weights_dir() / filename
    if has_hash(shipped, sha256):
        return shipped
    cached = cache_dir() / filename
    if has_hash(cached, sha256):
        return cached
    if offline is None:
        offline = is_offline()
    problems = [f"{path} has the wrong sha256" if path.exists() else f"not in {path.parent}"
                for path in (shipped, cached)]
    if offline or not entry.get("urls"):
        raise WeightsError(
            f"weights {filename} for {entry['name']!r} are not available offline: {'; '.join(problems)}. "
            f"Put a copy with sha256 {sha256} at {cached}, or allow downloads from {entry.get('urls')}"
        )
    return download(entry["urls"], filename, sha256, cached)


def download(urls, filename, sha256, target):
    """Fetch the first of `urls` that gives a file with `sha256`; atomically place it at `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        scratch = files.scratch_dir(target)  # also removes what a killed download left
        try:
            path = keras.utils.get_file(filename, url, cache_dir=scratch, cache_subdir="", file_hash=None)
            actual = sha256_of(path)
            if actual != sha256:
                errors.append(f"{url}: sha256 mismatch (expected {sha256}, got {actual})")
                continue
            os.replace(path, target)
            return target
        except Exception as err:  # noqa: BLE001 - each URL's failure is reported below
            errors.append(f"{url}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    raise WeightsError(
        f"could not download weights {filename} (expected sha256 {sha256}) to {target}:\n  "
        + "\n  ".join(errors)
        + f"\nNothing was written to {target.parent}. Retry, or place a verified copy at {target}."
    )
