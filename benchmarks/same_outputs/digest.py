"""SHA-256 (16 hex digits) of every array in the Looms, h5ads and model files below the current folder."""

import hashlib
import json
import pathlib

import h5py
import numpy as np


def digest_h5(path):
    out = {}
    with h5py.File(path) as h:

        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                out[name] = hashlib.sha256(
                    "\x00".join(map(str, np.ravel(item[()]))).encode()
                    if item.dtype.kind in "OSU"
                    else np.ascontiguousarray(item[()]).tobytes()
                ).hexdigest()[:16]

        h.visititems(visit)
    return out


result = {}
for p in sorted(pathlib.Path(".").rglob("*")):
    if p.suffix in (".loom", ".h5ad"):
        result[str(p)] = digest_h5(p)
    elif p.suffix == ".npz":
        with np.load(p) as z:
            result[str(p)] = {k: hashlib.sha256(z[k].tobytes()).hexdigest()[:16] for k in sorted(z.files)}
    elif p.name == "model.json":
        m = json.loads(p.read_text())
        result[str(p)] = hashlib.sha256(
            json.dumps(
                [m["subnetworks"], m["normalisation"], m["training"].get("train_loss")], sort_keys=True
            ).encode()
        ).hexdigest()[:16]
    elif p.name == "scores.json":
        s = json.loads(p.read_text())
        s.pop("input", None)
        result[str(p)] = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()[:16]
pathlib.Path("digest.json").write_text(json.dumps(result, indent=1, sort_keys=True))
print(len(result), "files digested")
