# Model exports of the SAM / MedSAM contract (models/sam.py). Included by the top-level
# Makefile; paths are relative to the repository root. Needs Debian's python3-torch and
# python3-onnx.

PYTHON ?= /usr/bin/python3
SAM_TINY_DIR := testdata/models
SAM_FULL_DIR := models/full

.PHONY: models-sam models-sam-full

# The committed tiny models (encoder, box decoder, public-layout decoder), their manifests and
# the golden outputs: byte-identical on every run with the same Debian torch.
models-sam:
	$(PYTHON) models/sam.py export --random-seed 1 --tiny --public --golden \
		--out $(SAM_TINY_DIR) --name sam_tiny

# Full-size ViT-B with random weights for benchmarks (about 360 MB, gitignored, not
# committed). build/bench/sam_reference.py rebuilds the same weights from the same seed.
models-sam-full:
	$(PYTHON) models/sam.py export --random-seed 1 --public --out $(SAM_FULL_DIR) --name sam
