#!/usr/bin/env bash
# Builds the images the Docker executor's tests run, without any registry:
#   shoal-test/busybox:latest       FROM scratch + Debian's static busybox and its applet links.
#   shoal-test/foreign-arch:latest  a one-file image built for another CPU architecture than the
#                                   daemon's (arm64 on amd64 hosts, amd64 elsewhere).
# Idempotent: exits at once when the image already exists (pass --force to rebuild).
set -euo pipefail

IMAGE="shoal-test/busybox:latest"
FOREIGN="shoal-test/foreign-arch:latest"

if ! docker info >/dev/null 2>&1; then
    echo "build-test-images: no Docker daemon answers (docker info failed); start one or set DOCKER_HOST" >&2
    exit 2
fi

if [[ "${1:-}" != "--force" ]] && docker image inspect "$IMAGE" "$FOREIGN" >/dev/null 2>&1; then
    exit 0
fi

if [[ ! -x /bin/busybox ]]; then
    if command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null; }
    fi
fi
if [[ ! -x /bin/busybox ]]; then
    echo "build-test-images: /bin/busybox is missing; install a static busybox (Debian: busybox-static)" >&2
    exit 1
fi
if ldd /bin/busybox >/dev/null 2>&1; then
    echo "build-test-images: /bin/busybox is dynamically linked; a FROM scratch image needs the static one (Debian: busybox-static)" >&2
    exit 1
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# The applet links are made here on the host: a FROM scratch image has no shell to run
# `busybox --install` in.
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc"
cp /bin/busybox "$ctx/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$ctx/rootfs/bin/$applet"
done
chmod 1777 "$ctx/rootfs/tmp"
echo "root:x:0:0:root:/root:/bin/sh" >"$ctx/rootfs/etc/passwd"
echo "root:x:0:" >"$ctx/rootfs/etc/group"

cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["/bin/sh"]
DOCKERFILE

# The legacy builder needs no buildx plugin; its deprecation notice is shown only on failure.
build() {
    local tag="$1"
    shift
    if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$@" >"$ctx/build.log" 2>&1; then
        cat "$ctx/build.log" >&2
        echo "build-test-images: docker build of $tag failed (output above)" >&2
        exit 1
    fi
    echo "build-test-images: built $tag"
}

build "$IMAGE" "$ctx"

mkdir -p "$ctx/foreign"
echo "this image is for another architecture" >"$ctx/foreign/README"
printf 'FROM scratch\nCOPY README /README\n' >"$ctx/foreign/Dockerfile"
case "$(docker version -f '{{.Server.Arch}}')" in
    amd64) foreign_arch=arm64 ;;
    *) foreign_arch=amd64 ;;
esac
build "$FOREIGN" --platform "linux/$foreign_arch" "$ctx/foreign"
