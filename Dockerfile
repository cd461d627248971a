# syntax=docker/dockerfile:1
# The sandbox-api image: one static executable, /sandbox-api, meant to be copied into
# any image (alpine/musl, debian, ubuntu, python-slim ...):
#
#   COPY --from=<this image> --chmod=0755 /sandbox-api /usr/local/bin/sandbox-api
#
# See examples/ for complete custom images with entrypoint.sh.

# Debian's own python3.11: staticx refuses interpreters whose libpython carries an
# absolute RUNPATH (pyenv, uv builds); Debian's has none.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make python3.11 python3.11-venv libpython3.11 binutils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make binary \
 && dist/sandbox-api --version

FROM scratch
COPY --from=build /src/dist/sandbox-api /sandbox-api
# Running this image directly needs a writable, exec-able /tmp (the binary unpacks
# itself there): docker run --tmpfs /tmp:exec <image>
ENTRYPOINT ["/sandbox-api"]
