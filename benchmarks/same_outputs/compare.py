"""Compare two digest.json files, leaving out provenance attributes (they hold dates)."""

import json
import sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
diff = []
for f in sorted(set(a) | set(b)):
    x, y = a.get(f), b.get(f)
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if k.startswith(("attrs/", "uns/")):
                continue
            if x.get(k) != y.get(k):
                diff.append(f"{f}:{k}")
    elif x != y:
        diff.append(f)
print("identical" if not diff else "DIFFER: " + ", ".join(diff))
n = sum(len(v) if isinstance(v, dict) else 1 for v in a.values())
print(f"{len(a)} files, {n} arrays compared (provenance attributes excluded: they hold dates)")
