# syntax=docker/dockerfile:1
# The feature-info server as a static binary on a distroless base: no
# shell, no package manager, a non-root user. docs/deploy.md describes how
# to run it; deploy_test.go runs this file's build command and checks the
# rest (and builds the image where a container runtime runs).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static: CGO off (SQLite is modernc.org/sqlite, pure Go), no paths of this
# machine in the binary, symbols stripped.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/feature-info ./cmd/feature-info
# The SQLite default's directory, owned by the image's user (a named
# volume mounted there starts with this owner).
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/feature-info /usr/local/bin/feature-info
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
VOLUME /data
USER 65532:65532
# serve reads SCOPEFLAGS_<FLAG> for each of its flags (a flag given on the
# command line wins): listen on every address of the container, keep the
# SQLite default on the volume. Set SCOPEFLAGS_DB=postgres://... for more
# than one server.
ENV SCOPEFLAGS_ADDR=:8080 \
    SCOPEFLAGS_DB=/data/scopeflags.db
EXPOSE 8080
# healthcheck asks /readyz at SCOPEFLAGS_ADDR (over HTTPS, pinned to
# SCOPEFLAGS_TLS_CERT, when that is set); exit 0 only on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/feature-info", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/feature-info"]
CMD ["serve"]
