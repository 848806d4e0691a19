#!/usr/bin/env python
"""Write the cluttered translated MNIST benchmark data (Mnih et al. 2014) to an .npz.

    python scripts/make_cluttered_mnist.py cluttered_mnist60.npz [--mnist mnist.npz] \
        [--canvas 60] [--clutter 4] [--fragment 8] [--train-count 20000] [--test-count 2000]

Without --mnist, MNIST comes from keras.datasets (downloaded once). The result holds
x/y/boxes/masks for train and test (zoo.data.cluttered.write_npz) and is deterministic.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.data import cluttered  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("--mnist", default=None, help="an mnist.npz (keras layout); default: keras.datasets")
    parser.add_argument("--canvas", type=int, default=60)
    parser.add_argument("--clutter", type=int, default=4)
    parser.add_argument("--fragment", type=int, default=8)
    parser.add_argument("--train-count", type=int, default=None)
    parser.add_argument("--test-count", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    path = cluttered.write_npz(args.output, args.mnist, args.train_count, args.test_count, args.canvas, args.clutter,
                               args.fragment, args.seed, args.force)
    print(path)


if __name__ == "__main__":
    main()
