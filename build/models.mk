# Model exports of the MedLAM contract (models/medlam.py). Included by the top-level Makefile;
# paths are relative to the repository root. Needs Debian's python3-torch and python3-onnx.

PYTHON ?= /usr/bin/python3
MEDLAM_TINY_DIR := testdata/models
MEDLAM_FULL_DIR := models/full

.PHONY: models-medlam models-medlam-full

# The committed tiny models and their manifests (byte-identical on every run with the same
# Debian torch) and the golden outputs (which may differ in the last printed digit from one
# CPU to another; models/test_medlam.py compares them numerically).
models-medlam:
	$(PYTHON) models/medlam.py export --random-seed 0 --tiny --out $(MEDLAM_TINY_DIR) \
		--golden $(MEDLAM_TINY_DIR)/medlam_tiny_golden.json

# Full-size random weights for benchmarks (about 60 MB each, gitignored, not committed).
models-medlam-full:
	$(PYTHON) models/medlam.py export --random-seed 0 --out $(MEDLAM_FULL_DIR)
