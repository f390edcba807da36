"""Time NIfTI loading: nibabel load + get_fdata(float32) against engine/nifti's Read.

Run from the repository root with Debian's python (it has nibabel):

    /usr/bin/python3 build/bench/nifti_compare.py [--reps 5] [--skip-synthetic]

Files: ../shared/data/ct/abdomen_ct.nii.gz (if present) and a synthetic 512x512x300 int16
CT-like .nii.gz generated in a temporary directory. For each file the two readers run in
alternation, several rounds, and the best time of each is kept; the ratio printed is
nibabel time / Go time (above 1: Go is faster). Go runs as a compiled test binary
(BenchmarkReadAbdomen, or BenchmarkReadFile with NIFTI_BENCH_FILE), the best of three
runs in one process per round, as nibabel runs repeatedly in this process.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SHARED = os.path.join(ROOT, '..', 'shared', 'data', 'ct', 'abdomen_ct.nii.gz')


def synthetic(path):
    """A CT-like int16 volume: air, a body ellipse of soft tissue, bone, noise."""
    rng = np.random.default_rng(0)
    nx, ny, nz = 512, 512, 300
    x = (np.arange(nx) - nx / 2)[:, None] / (nx * 0.4)
    y = (np.arange(ny) - ny / 2)[None, :] / (ny * 0.3)
    body = (x * x + y * y) < 1
    spine = ((x * x) + (y - 0.6) ** 2) < 0.01
    sl = np.where(body, 40, -1000).astype(np.int16)
    sl[spine] = 700
    vol = np.empty((nx, ny, nz), dtype=np.int16)
    for k in range(nz):
        noise = rng.normal(0, 12, size=(nx, ny)).astype(np.int16)
        vol[:, :, k] = np.where(body, sl + noise, sl)
    aff = np.diag([0.7, 0.7, 1.25, 1.0])
    aff[:3, 3] = [-179, -179, -370]
    img = nib.Nifti1Image(vol, aff)
    img.header.set_data_dtype(np.int16)
    nib.save(img, path)


def time_nibabel(path):
    t = time.perf_counter()
    nib.load(path).get_fdata(dtype=np.float32)
    return time.perf_counter() - t


def time_go(binary, bench, path, count):
    env = dict(os.environ, NIFTI_BENCH_FILE=path)
    out = subprocess.run(
        [binary, '-test.run', '^$', '-test.bench', '^' + bench + '$',
         '-test.benchtime', '1x', '-test.count', str(count)],
        cwd=os.path.join(ROOT, 'engine', 'nifti'), env=env, check=True,
        capture_output=True, text=True).stdout
    ns = [float(m) for m in re.findall(r'\s(\d+(?:\.\d+)?) ns/op', out)]
    if not ns:
        sys.exit('no benchmark result in:\n' + out)
    return min(ns) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=5, help='rounds per reader and file')
    ap.add_argument('--skip-synthetic', action='store_true')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, 'nifti.test')
        subprocess.run(['go', 'test', '-c', '-o', binary, './engine/nifti/'], cwd=ROOT,
                       check=True)
        files = []
        if os.path.exists(SHARED):
            files.append(('abdomen_ct.nii.gz (122x101x112 int32)', SHARED, 'BenchmarkReadAbdomen'))
        else:
            print('shared CT absent; skipping it')
        if not args.skip_synthetic:
            syn = os.path.join(tmp, 'synthetic_512x512x300_int16.nii.gz')
            synthetic(syn)
            files.append(('synthetic 512x512x300 int16', syn, 'BenchmarkReadFile'))
        print(f'{"file":40s} {"nibabel s":>10s} {"go s":>10s} {"nibabel/go":>10s}')
        for label, path, bench in files:
            nb, go = [], []
            for _ in range(args.reps):
                nb.append(time_nibabel(path))
                go.append(time_go(binary, bench, path, 3))
            print(f'{label:40s} {min(nb):10.4f} {min(go):10.4f} {min(nb) / min(go):10.2f}')


if __name__ == '__main__':
    main()
