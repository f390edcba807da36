#!/usr/bin/env python3
"""Type an ONNX export for a strongly typed TensorRT build: fp16 matrix work, fp32 the rest.

TensorRT 11 removed the weakly typed precision flags (trtexec --fp16, --precisionConstraints,
--layerPrecisions); a network's types come from the ONNX graph (--stronglyTyped, always on
in 11 and available since 10.0). NVIDIA's tool for this step (ModelOpt AutoCast) is not
installable here, so this script does the one transformation the recipes need:

  * Conv, ConvTranspose, MatMul and Gemm run in fp16: their float weights are stored as fp16
    initializers, other float inputs pass through a Cast to fp16, and their output is cast
    back to fp32 under its original name (chains of such ops skip the round trip).
  * Everything else stays fp32, notably LayerNormalization (SAM: its variance overflows fp16
    on the encoder's activations), Softmax, InstanceNormalization (MedLAM), the reductions
    and the elementwise ops. TensorRT fuses the casts into neighbouring kernels.

Graph inputs and outputs keep their fp32 types, so the model contract (the manifest's
tensors) is unchanged. Usage: mixed_precision.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HEAVY = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
FP16_MAX = float(np.finfo(np.float16).max)


def convert(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    other_uses = {}  # initializer -> used by some op that stays fp32
    for node in g.node:
        if node.op_type not in HEAVY:
            for name in node.input:
                if name in inits:
                    other_uses[name] = True

    fp16 = {}  # fp32 tensor name -> the name of its fp16 twin
    nodes, new_inits = [], []
    for node in g.node:
        if node.op_type not in HEAVY:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if not name:
                continue
            if name not in fp16:
                twin = name + "__fp16"
                init = inits.get(name)
                if init is not None and init.data_type == TensorProto.FLOAT:
                    arr = numpy_helper.to_array(init)
                    if arr.size and float(np.abs(arr).max()) > FP16_MAX:
                        raise ValueError(f"initializer {name} exceeds the fp16 range")
                    new_inits.append(numpy_helper.from_array(arr.astype(np.float16), twin))
                elif init is not None:
                    continue  # integer initializer (none of HEAVY takes one): leave it
                else:
                    nodes.append(helper.make_node("Cast", [name], [twin], to=TensorProto.FLOAT16,
                                                  name=twin + "_cast"))
                fp16[name] = twin
            node.input[i] = fp16[name]
        out = node.output[0]
        twin = out + "__fp16"
        node.output[0] = twin
        nodes.append(node)
        nodes.append(helper.make_node("Cast", [twin], [out], to=TensorProto.FLOAT,
                                      name=out + "_cast32"))
        fp16[out] = twin

    keep = [i for i in g.initializer if i.name not in fp16 or other_uses.get(i.name)]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    onnx.checker.check_model(model)
    return model


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    model = onnx.load(argv[1])
    onnx.save(convert(model), argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
