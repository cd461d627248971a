# syntax=docker/dockerfile:1
# The sandbox-api image: one static executable, /sandbox-api, meant to be copied into
# any image (alpine/musl, debian, ubuntu, python-slim ...):
#
#   COPY --from=<this image> --chmod=0755 /sandbox-api /usr/local/bin/sandbox-api
#
# See examples/ for complete custom images with entrypoint.sh.

# The build compiles a static CPython (Debian's upstream tarball, fetched with
# apt-get source) and our native dependencies from their pinned sdists.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make python3 python3-venv gcc g++ binutils dpkg-dev \
    libc6-dev libssl-dev zlib1g-dev git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make binary \
 && dist/sandbox-api --version

FROM scratch
COPY --from=build /src/dist/sandbox-api /sandbox-api
# It unpacks nothing: a read-only root with no /tmp is fine.
ENTRYPOINT ["/sandbox-api"]
