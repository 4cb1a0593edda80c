# syntax=docker/dockerfile:1
# The image the Action runs: the release binary plus the PostgreSQL client tools of every major that Supabase
# and Neon run (pg_dump refuses a server newer than itself; pg_restore must be at least as new as the dump).
# No USER and no WORKDIR: GitHub runs action containers as root with the workspace as working directory.
# Bump the base tags together with Cargo.lock's toolchain needs; release.yml builds this on GitHub (this
# machine has no Docker engine, so here it is only linted).

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p supaneon-sync \
    && install -m 0755 target/release/supaneon-sync /usr/local/bin/supaneon-sync

FROM debian:bookworm-slim AS runtime
ARG PG_MAJORS="15 16 17 18"
# The PostgreSQL project's apt repository (PGDG), signed by its published key (fingerprint
# B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8); Debian 12 itself only ships client 15.
ADD --chmod=0644 https://www.postgresql.org/media/keys/ACCC4CF8.asc /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Versions are not pinned: PGDG keeps only the newest minor of each major, so a pin would break every
# rebuild; the image is reproducible by its digest instead, which the release pins in image-ref.
# (ca-certificates first: apt needs it to reach the PGDG repository over https.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && read -r -a majors <<< "${PG_MAJORS}" \
    && apt-get update \
    && apt-get install -y --no-install-recommends "${majors[@]/#/postgresql-client-}" \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/supaneon-sync /usr/local/bin/supaneon-sync

LABEL org.opencontainers.image.title="supaneon-sync" \
      org.opencontainers.image.description="Verified logical backups of a Supabase Postgres database into Neon branches" \
      org.opencontainers.image.licenses="MIT"

# tini is PID 1: it forwards SIGTERM/SIGINT to the binary (which cleans up its temporary branch) and reaps
# pg_dump/pg_restore children. The binary handles the signals itself too, for runners that skip tini.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/supaneon-sync"]
CMD ["action"]

# Smoke test: the binary starts and every bundled pg_dump runs.
RUN supaneon-sync --version \
    && for v in ${PG_MAJORS}; do "/usr/lib/postgresql/$v/bin/pg_dump" --version; done
