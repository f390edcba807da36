"""Dump what nibabel reads from a NIfTI file, for the parity tests of package nifti.

usage: /usr/bin/python3 nib_dump.py IN.nii[.gz] OUT.json OUT.f32 [IN OUT.json OUT.f32 ...]

Files come in triples, so that one process (one import of nibabel and numpy) serves a whole
test. For each, OUT.json holds the on-disk header fields (after nibabel's load-time fixes), the affine
and the shape; OUT.f32 the voxels of get_fdata(dtype=float32), i fastest, little endian.
Non-finite floats are written as strings so that the JSON stays standard.
"""
import json
import math
import sys

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener


def num(x):
    x = float(x)
    return x if math.isfinite(x) else repr(x)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit('usage: nib_dump.py IN OUT.json OUT.f32 [IN OUT.json OUT.f32 ...]')
    for i in range(0, len(args), 3):
        dump(*args[i:i + 3])


def dump(src, out_json, out_raw):
    img = nib.load(src)
    with ImageOpener(src) as f:
        hdr = img.header_class.from_fileobj(f)
    fields = {}
    for k in ('sizeof_hdr', 'datatype', 'bitpix', 'qform_code', 'sform_code', 'xyzt_units',
              'intent_code', 'vox_offset'):
        fields[k] = int(hdr[k])
    for k in ('scl_slope', 'scl_inter', 'quatern_b', 'quatern_c', 'quatern_d', 'qoffset_x',
              'qoffset_y', 'qoffset_z', 'cal_min', 'cal_max'):
        fields[k] = num(hdr[k])
    fields['dim'] = [int(d) for d in hdr['dim']]
    fields['pixdim'] = [num(p) for p in hdr['pixdim']]
    for k in ('srow_x', 'srow_y', 'srow_z'):
        fields[k] = [num(v) for v in hdr[k]]
    fields['descrip'] = hdr['descrip'].item().decode('latin-1')
    fields['extensions'] = [[int(e.get_code()), e.get_content().hex()]
                            for e in hdr.extensions]
    data = img.get_fdata(dtype=np.float32)
    out = {
        'shape': list(img.shape),
        'affine': [[num(v) for v in row] for row in img.affine],
        'header': fields,
        'endian': hdr.endianness,
    }
    with open(out_json, 'w') as f:
        json.dump(out, f)
    np.asarray(data, dtype='<f4').ravel(order='F').tofile(out_raw)


if __name__ == '__main__':
    main()
