# syntax=docker/dockerfile:1
# Every Parley executable in one image: the services (mapping-service, link-service, the three
# adapters), the simulators, the `parley` CLI. Compose picks the executable with `command:`.
#
#   docker build -t parley:local .
#
# NOTE: written and reviewed without a Docker engine (the project's CI machine has none), so
# this file has not been built yet; see docs/deployment.md ("What is not verified").
ARG SWIFT_IMAGE=swift:6.1-noble
ARG RUNTIME_IMAGE=ubuntu:24.04

# ---- build -------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librabbitmq-dev libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so editing the sources does not fetch them again (Package.resolved is
# used when present).
COPY Package.* ./
RUN swift package resolve
COPY Shared Shared
COPY Services Services
COPY Tests Tests
# The Swift runtime is linked statically; librabbitmq and libpq stay shared (runtime stage).
RUN swift build -c release --static-swift-stdlib \
 && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
 && mkdir -p /staging/bin \
 && for exe in mapping-service link-service customerp-adapter customwebshop-adapter powerofficego-adapter \
               customerp-simulator customwebshop-simulator powerofficego-simulator parley; do \
      install -m 0755 "$bin/$exe" /staging/bin/; \
    done \
 && find "$bin" -maxdepth 1 -name '*.resources' -exec cp -R {} /staging/bin/ \;

# ---- runtime -----------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# librabbitmq4 and libpq5: the two C libraries; curl: the compose healthchecks and the init and
# seed scripts; ca-certificates: https to real systems and amqps/sslmode=verify-full.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librabbitmq4 libpq5 ca-certificates curl tzdata libcurl4 libxml2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --home-dir /opt/parley --shell /usr/sbin/nologin parley
COPY --from=build /staging/bin/ /usr/local/bin/
# What the services read at run time (PARLEY_REPOSITORY=/opt/parley): the mapping tables, the
# contracts and the PowerOffice Go spec they are checked against.
COPY mappings /opt/parley/mappings
COPY docs/contracts /opt/parley/docs/contracts
COPY specs/powerofficego-v2.openapi.yaml /opt/parley/specs/powerofficego-v2.openapi.yaml
# The init and seed scripts compose runs in one-shot containers of this image.
COPY infra/rabbitmq /opt/parley/infra/rabbitmq
COPY infra/demo /opt/parley/infra/demo
WORKDIR /opt/parley
ENV PARLEY_REPOSITORY=/opt/parley
USER 10001:10001
# The observability port (/health/live, /health/ready, /metrics).
EXPOSE 9400
CMD ["mapping-service", "--help"]
