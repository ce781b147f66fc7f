# syntax=docker/dockerfile:1
#
# Bellhop's relay as a container image: a static binary (CGO_ENABLED=0) on
# distroless static, as a non-root user. The final image has no shell and
# no curl: `relay healthcheck` is its health check.
#
#   docker build -t bellhop-relay --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -e DATABASE_URL=... bellhop-relay migrate
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e BELLHOP_JWT_SECRET=... bellhop-relay
#
# compose.yaml runs it with PostgreSQL and the demo page; the README's
# "Deploying" section has the rest.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The module cache is its own layer: it changes only with go.mod/go.sum.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# Static (no libc: the final image has none), reproducible paths, the
# version `relay version` prints.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/relay ./cmd/relay

# distroless static: CA certificates (for a JWKS URL or a TLS database),
# tzdata and /etc/passwd with the nonroot user (65532), nothing else.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="bellhop-relay" \
      org.opencontainers.image.description="Bellhop: a transactional notification relay for PostgreSQL (SSE push and inbox API)" \
      org.opencontainers.image.source="https://github.com/bellhophq/bellhop" \
      org.opencontainers.image.url="https://github.com/bellhophq/bellhop" \
      org.opencontainers.image.documentation="https://github.com/bellhophq/bellhop#deploying" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

COPY --from=build /out/relay /relay
USER nonroot:nonroot
# The API and streams (BELLHOP_LISTEN_ADDR, default :8080). Set
# BELLHOP_OPS_ADDR (e.g. :9090) to serve /healthz, /readyz and /metrics on
# a port of their own: the health check follows it.
EXPOSE 8080
# /healthz is liveness: the process serves HTTP. Readiness (/readyz: the
# database and River) is for a load balancer or Kubernetes to ask.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/relay", "healthcheck"]
ENTRYPOINT ["/relay"]
CMD ["serve"]
