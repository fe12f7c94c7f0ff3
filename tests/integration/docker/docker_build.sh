#!/usr/bin/env bash
# Build the project's Dockerfile with buildah on a local base image (Debian bookworm, Python,
# tensorflow-cpu) given through BASE_IMAGE, then run the tools inside it as the image's user.
# No Docker engine or registry is needed. Usage: tests/docker_build.sh WORKDIR (needs root).
set -euo pipefail
work=$(realpath "$1")
repo=$(cd "$(dirname "$0")/../../.." && pwd)
tensorflow=2.21.0
storage=(--root "$work/root" --runroot "$work/runroot" --storage-driver vfs)
trap 'rm -rf "$work/root" "$work/runroot" "$work/rootfs" "$work/base.tar"' EXIT  # gigabytes of layers

echo "== base image: Debian bookworm + Python + tensorflow-cpu==$tensorflow"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$work/rootfs" > "$work/debootstrap.log"
tar -C "$work/rootfs" -cf "$work/base.tar" .
rm -rf "$work/rootfs"
podman "${storage[@]}" import --quiet "$work/base.tar" localhost/debian-python:test > /dev/null
cat > "$work/Containerfile.base" <<CONTAINERFILE
FROM localhost/debian-python:test
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN python3 -m pip install --quiet --no-cache-dir --break-system-packages tensorflow-cpu==$tensorflow
CONTAINERFILE
buildah "${storage[@]}" bud --quiet --isolation chroot -v /etc/ssl/certs:/etc/ssl/certs:ro \
    -f "$work/Containerfile.base" -t localhost/tensorflow-base:test "$work" > /dev/null

echo "== the project's Dockerfile"
buildah "${storage[@]}" bud --quiet --isolation chroot -v /etc/ssl/certs:/etc/ssl/certs:ro \
    --build-arg BASE_IMAGE=localhost/tensorflow-base:test --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --build-arg REVISION="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t localhost/deepimpute-tool:test "$repo" > /dev/null

container=$(buildah "${storage[@]}" from localhost/deepimpute-tool:test)
buildah "${storage[@]}" copy --chmod 0644 "$container" "$repo/tests/data/pbmc_small.loom" /tmp/in.loom > /dev/null
inside() { buildah "${storage[@]}" run --isolation chroot "$container" -- "$@"; }

echo "== inside the image"
inside id
inside deepimpute --version
for step in filter mask train impute score split merge run; do
    inside "deepimpute-$step" --help > /dev/null
    echo "deepimpute-$step, usage ok"
done
inside deepimpute run /tmp/in.loom /tmp/out --min-genes 10 --max-epochs 2 --quiet
echo "run outputs: $(inside ls /tmp/out | tr '\n' ' ')"

echo "== as another user, into a mounted folder (docker run -u \"\$(id -u):\$(id -g)\" -v \"\$PWD:/data\")"
mkdir "$work/data"
chown 12345:12345 "$work/data"
buildah "${storage[@]}" run --isolation chroot --user 12345:12345 -v "$work/data:/data" "$container" -- \
    deepimpute run /tmp/in.loom /data/out --min-genes 10 --max-epochs 2 --quiet
owners=$(stat -c '%u' "$work"/data/out/* | sort -u | tr '\n' ' ')
echo "as uid 12345 into a mounted folder: $(ls "$work/data/out" | tr '\n' ' ')owned by ${owners% }"
