"""The weights registry: shipped file, cache, downloads from a local HTTP server, hash errors."""

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import zoo
from tests.conftest import CIFAR_JPEG, SHARED_DATASETS, needs_cifar
from zoo import weights
from zoo.weights import WeightsError

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        if self.path == "/good.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/wrong.bin":
            body = b"not the weights" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/dropped.bin":  # announces the full size, sends a third, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def registry_dirs(tmp_path, monkeypatch):
    shipped, cache = tmp_path / "weights", tmp_path / "cache"
    shipped.mkdir()
    monkeypatch.setenv("ATTENTION_ZOO_WEIGHTS", str(shipped))
    monkeypatch.setenv("ATTENTION_ZOO_HOME", str(cache))
    monkeypatch.delenv("ATTENTION_ZOO_OFFLINE", raising=False)
    return shipped, cache


def write_manifest(shipped, urls, sha=SHA, name="abn_resnet20.toy"):
    entry = {"arch": "abn_resnet20", "file": "toy.bin", "sha256": sha, "size": len(PAYLOAD), "urls": urls,
             "build": {"num_classes": 2, "input_shape": [16, 16, 3]}, "card": {}}
    (shipped / "manifest.json").write_text(json.dumps({name: entry}))


def leftovers(cache):
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


def test_download_good_file_then_offline_cache_hit(server, registry_dirs):
    shipped, cache = registry_dirs
    write_manifest(shipped, [f"{server}/good.bin"])
    path = weights.resolve("abn_resnet20.toy")
    assert path == cache / "toy.bin" and path.read_bytes() == PAYLOAD
    assert leftovers(cache) == ["toy.bin"]
    write_manifest(shipped, ["http://127.0.0.1:9/unreachable.bin"])  # cache hit needs no network
    assert weights.resolve("abn_resnet20.toy", offline=True) == cache / "toy.bin"


def test_shipped_file_wins_and_is_verified(server, registry_dirs):
    shipped, cache = registry_dirs
    write_manifest(shipped, [f"{server}/good.bin"])
    (shipped / "toy.bin").write_bytes(PAYLOAD)
    assert weights.resolve("abn_resnet20.toy") == shipped / "toy.bin"
    assert not cache.exists()
    (shipped / "toy.bin").write_bytes(PAYLOAD[:-1])  # a damaged shipped copy is not trusted
    assert weights.resolve("abn_resnet20.toy") == cache / "toy.bin"


def test_wrong_hash_is_a_clear_error_and_leaves_nothing(server, registry_dirs):
    shipped, cache = registry_dirs
    url = f"{server}/wrong.bin"
    write_manifest(shipped, [url])
    with pytest.raises(WeightsError) as err:
        weights.resolve("abn_resnet20.toy")
    message = str(err.value)
    for part in ("toy.bin", url, str(cache / "toy.bin"), SHA, "sha256 mismatch"):
        assert part in message
    assert leftovers(cache) == []


def test_dropped_connection_leaves_no_partial_file_and_next_url_is_tried(server, registry_dirs):
    shipped, cache = registry_dirs
    write_manifest(shipped, [f"{server}/dropped.bin"])
    with pytest.raises(WeightsError, match="dropped.bin"):
        weights.resolve("abn_resnet20.toy")
    assert leftovers(cache) == []
    write_manifest(shipped, [f"{server}/dropped.bin", f"{server}/good.bin"])  # mirror fallback
    assert weights.resolve("abn_resnet20.toy").read_bytes() == PAYLOAD


def test_corrupt_cached_file_is_replaced_not_trusted(server, registry_dirs):
    shipped, cache = registry_dirs
    cache.mkdir()
    (cache / "toy.bin").write_bytes(b"garbage")
    write_manifest(shipped, [f"{server}/good.bin"])
    with pytest.raises(WeightsError, match="wrong sha256"):
        weights.resolve("abn_resnet20.toy", offline=True)
    assert weights.resolve("abn_resnet20.toy").read_bytes() == PAYLOAD


def test_offline_error_says_where_to_put_the_file(registry_dirs, monkeypatch):
    shipped, cache = registry_dirs
    write_manifest(shipped, ["http://127.0.0.1:9/x.bin"])
    monkeypatch.setenv("ATTENTION_ZOO_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        weights.resolve("abn_resnet20.toy")
    assert SHA in str(err.value) and str(cache / "toy.bin") in str(err.value)


def test_names_and_suggestions(registry_dirs):
    shipped, _ = registry_dirs
    write_manifest(shipped, [])
    assert zoo.list_models("abn*", pretrained=True) == ["abn_resnet20.toy"]
    assert weights.manifest_entry("abn_resnet20")["name"] == "abn_resnet20.toy"  # default tag
    with pytest.raises(ValueError, match="Did you mean: abn_resnet20.toy"):
        weights.manifest_entry("abn_resnet20.tyo")
    with pytest.raises(ValueError, match="no pretrained weights"):
        weights.manifest_entry("abn_resnet32")


def test_the_real_manifest_cards_are_complete_and_hashes_match():
    manifest = json.loads((Path(zoo.__file__).parent.parent / "weights" / "manifest.json").read_text())
    required = {"dataset", "preprocessing", "class_names", "license", "command", "epochs", "wall_time",
                "machine", "accuracy", "evaluation_command"}
    for name, entry in manifest.items():
        assert required <= set(entry["card"]), name
        data = entry["card"]["dataset"].split("(")[0]  # the dataset's name, not what its images came from
        assert any(key in data for key in ("MNIST", "CIFAR-10", "CelebA") if key in entry["card"]["license"]), name
        path = Path(zoo.__file__).parent.parent / "weights" / entry["file"]
        assert path.stat().st_size == entry["size"]
        assert weights.sha256_of(path) == entry["sha256"], name
        model = zoo.load(name)
        assert model(np.zeros((1, *entry["build"]["input_shape"]), "float32"))["logits"].shape[-1] == len(
            entry["card"]["class_names"])


@needs_cifar
@pytest.mark.parametrize("name", [n for n, e in json.loads(
    (Path(__file__).parent.parent / "weights" / "manifest.json").read_text()).items()
    if e["card"]["dataset"].startswith("CIFAR-10 (JPEG")])
def test_shipped_cifar_weights_match_their_card_on_the_first_1000_test_images(name):
    """The card's accuracy was measured on all 10,000 images; 1,000 of them must agree within
    5 points (about 4 binomial standard deviations): catches wrong weights or preprocessing."""
    from zoo.data import load_cifar10_jpeg
    from zoo.evaluation import evaluate

    test = load_cifar10_jpeg(CIFAR_JPEG, "test")
    subset = (test.images[:1000], test.labels[:1000])
    top1 = evaluate(zoo.load(name), subset, progress=False)["top1"]
    assert abs(top1 - weights.manifest_entry(name)["card"]["accuracy"]["test_top1"]) < 0.05, top1


MNIST_NPZ = SHARED_DATASETS / "mnist.npz"
CELEBA_NPZ = SHARED_DATASETS / "celeba-subset-64.npz"
MANIFEST = json.loads((Path(__file__).parent.parent / "weights" / "manifest.json").read_text())


@pytest.mark.skipif(not MNIST_NPZ.exists(), reason="../shared/datasets/mnist.npz is absent")
@pytest.mark.parametrize("name", [n for n, e in MANIFEST.items() if e["card"]["dataset"].startswith("Cluttered")])
def test_shipped_cluttered_mnist_weights_match_their_card(name):
    """The card's top-1 was measured on the 2,000 generated test images (deterministic from MNIST):
    the same images must give the same number (one image is 0.05 points)."""
    from zoo.data import cluttered
    from zoo.evaluation import evaluate

    card = weights.manifest_entry(name)["card"]["accuracy"]
    test = cluttered.cluttered_mnist(*cluttered.load_mnist(str(MNIST_NPZ))["test"], card["num_examples"],
                                     split="test")
    top1 = evaluate(zoo.load(name), (test["x"], test["y"]), progress=False)["top1"]
    assert abs(top1 - card["test_top1"]) <= 0.0015, top1


@pytest.mark.skipif(not CELEBA_NPZ.exists(), reason="../shared/datasets/celeba-subset-64.npz is absent")
@pytest.mark.parametrize("name", [n for n, e in MANIFEST.items() if e["card"]["dataset"].startswith("CelebA")])
def test_shipped_celeba_weights_match_their_card(name):
    """The card's mean attribute accuracy and AUC were measured on the 870 test faces (id % 5 == 0)."""
    from zoo.evaluation import evaluate

    card = weights.manifest_entry(name)["card"]["accuracy"]
    metrics = evaluate(zoo.load(name), str(CELEBA_NPZ), progress=False, split="test")
    assert metrics["num_examples"] == card["num_examples"] == 870
    assert abs(metrics["mean_accuracy"] - card["test_mean_accuracy"]) <= 0.0006, metrics["mean_accuracy"]
    assert abs(metrics["mean_auc"] - card["test_mean_auc"]) <= 0.001, metrics["mean_auc"]
    assert metrics["majority_baseline"] == pytest.approx(card["test_majority_baseline"], abs=1e-4)


def test_every_shipped_model_takes_input_gradients_and_an_attack_step_without_crashing():
    """Before: on a CPU with AVX512-BF16, SmoothGrad, Integrated Gradients and FGSM killed the
    process (segfault / abort in oneDNN's Conv2DBackpropFilter) on the width-8 cluttered-MNIST ABN
    models, and no test took an input gradient of a shipped model at its real size."""
    import subprocess
    import sys

    from tests.conftest import REPO

    result = subprocess.run([sys.executable, "-m", "tests.helpers.input_gradients"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    started = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith("start ")]
    assert result.returncode == 0, f"exit {result.returncode} during {started[-1:]}: {result.stderr[-1500:]}"
    done = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [d["done"] for d in done] == weights.pretrained_names() == started
    for record in done:
        assert record["gradient"] > 0 and record["smoothgrad"] > 0, record
        assert abs(record["fgsm_moved"] - 2.0) < 1e-3, record
