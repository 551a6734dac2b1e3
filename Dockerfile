# The image a fleet's Jobs run (`runbook fleet --executor kube --image ...`):
# Debian 12 with the runbook binary and the client programs runbooks call
# (psql/pg_dump/pg_restore 15, ssh). From a checkout of this repository:
#
#   docker build -t registry.example.org/runbook:$(git rev-parse --short HEAD) .
#   docker push registry.example.org/runbook:$(git rev-parse --short HEAD)
#
# It is not built by the tests (the CI machines have no container engine);
# the Job spec takes any image whose PATH holds `runbook` (or give its path
# with --pod-command). Runbooks that copy from another PostgreSQL major need
# that major's pg_dump: add PGDG's postgresql-client-NN to the second stage;
# runbooks with kube steps need kubectl there too (Kubernetes' own apt repository).
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config python3 \
      liblua5.4-dev libyaml-cpp-dev libcli11-dev catch2 libsqlite3-dev nlohmann-json3-dev \
      libpq-dev libssh-dev libssl-dev libpg-query-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && ninja -C /build runbook \
 && install -m 0755 /build/runbook /usr/local/bin/runbook

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates liblua5.4-0 libyaml-cpp0.7 libsqlite3-0 libpq5 libssh-4 libssl3 \
      libpg-query1504.0 postgresql-client-15 openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/runbook /usr/local/bin/runbook
# Not root. A pod lays the fleet's runbook out under /tmp/runbook-fleet
# (with a read-only root file system, mount an emptyDir at /tmp).
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["runbook"]
