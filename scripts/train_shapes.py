"""Train the shapes model (sdexp/shapes/) on the CPU and write its weights to sdexp/shapes/weights/.

    nice -n 10 python scripts/train_shapes.py --threads 1      # about 30 min on 2 shared cores
    python scripts/train_shapes.py --help                      # stages, steps, seeds, folders

Checkpoints go to $SDEXP_CACHE/shapes-train (or --work); rerunning resumes where a run stopped.
The settings, seeds, library versions and timings of the run are written to weights/TRAINING.json.
"""
from sdexp.shapes.train import main

if __name__ == "__main__":
    raise SystemExit(main())
