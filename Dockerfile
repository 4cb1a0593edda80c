# syntax=docker/dockerfile:1
# The image the Action runs: the release binary plus pg_dump and pg_restore of each major that Supabase serves
# (15 and 17; the tool runs the source's major, and the Neon branch runs that major too). Nothing else of
# PostgreSQL: no psql, no server, no postgresql-common wrappers and so no perl beyond Debian's essential
# perl-base.
# No USER and no WORKDIR: GitHub runs action containers as root with the workspace as working directory.
# Base images are pinned by digest (the tag in the same line, for people and for Dependabot, which bumps both:
# .github/dependabot.yml). release.yml builds this on GitHub; this machine has no Docker engine, so here it is
# only linted.

FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p supaneon-sync \
    && install -m 0755 target/release/supaneon-sync /usr/local/bin/supaneon-sync

# A stage of its own for the release binaries (release.yml exports it with --target binary).
FROM scratch AS binary
COPY --from=build /usr/local/bin/supaneon-sync /supaneon-sync

# The PostgreSQL project's apt signing key (PGDG), accepted only if it is exactly the published key:
# one primary key, fingerprint B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8. gpg stays in this stage.
FROM debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818 AS pgdg-key
ARG PGDG_KEY_FINGERPRINT=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8
ADD --chmod=0644 https://www.postgresql.org/media/keys/ACCC4CF8.asc /pgdg.asc
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gpg \
    && primary="$(gpg --batch --with-colons --show-keys /pgdg.asc \
        | awk -F: '$1 == "pub" { want = 1; next } want && $1 == "fpr" { print $10; want = 0 }')" \
    && if [[ "$primary" != "$PGDG_KEY_FINGERPRINT" ]]; then \
         echo "PGDG key: expected exactly the primary key ${PGDG_KEY_FINGERPRINT}, got: ${primary:-none}" >&2; exit 1; \
       fi \
    && rm -rf /var/lib/apt/lists/*

# The client packages, installed here only to take pg_dump and pg_restore out of them.
FROM debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818 AS pg-clients
ARG PG_MAJORS="15 17"
COPY --from=pgdg-key /pgdg.asc /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Versions are not pinned: PGDG keeps only the newest minor of each major, so a pin would break every
# rebuild; the image is reproducible by its digest instead, which the release pins in image-ref.
# (ca-certificates first: apt needs it to reach the PGDG repository over https.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && read -r -a majors <<< "${PG_MAJORS}" \
    && apt-get update \
    && apt-get install -y --no-install-recommends "${majors[@]/#/postgresql-client-}" \
    && for v in "${majors[@]}"; do \
         install -D -m 0755 -t "/out/usr/lib/postgresql/$v/bin" \
           "/usr/lib/postgresql/$v/bin/pg_dump" "/usr/lib/postgresql/$v/bin/pg_restore"; \
       done \
    && rm -rf /var/lib/apt/lists/*

FROM debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818 AS runtime
ARG PG_MAJORS="15 17"
COPY --from=pgdg-key /pgdg.asc /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# What pg_dump and pg_restore link: libpq5 from PGDG (the newest, which serves every older major), zlib, lz4,
# zstd. CA certificates (apt over https; sslrootcert=system) and tini.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends tini libpq5 zlib1g liblz4-1 libzstd1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=pg-clients /out/ /
COPY --from=build /usr/local/bin/supaneon-sync /usr/local/bin/supaneon-sync

LABEL org.opencontainers.image.title="supaneon-sync" \
      org.opencontainers.image.description="Verified logical backups of a Supabase Postgres database into Neon branches" \
      org.opencontainers.image.licenses="MIT"

# tini is PID 1: it forwards SIGTERM/SIGINT to the binary (which cleans up its temporary branch) and reaps
# pg_dump/pg_restore children. The binary handles the signals itself too, for runners that skip tini.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/supaneon-sync"]
CMD ["action"]

# Smoke test: the binary starts; every bundled pg_dump and pg_restore finds all its libraries and runs; their
# libpq knows require_auth (SCRAM only on an unverified source: SECURITY.md); the perl package (beyond the
# essential perl-base) is not installed.
RUN supaneon-sync --version \
    && for v in ${PG_MAJORS}; do \
         for tool in pg_dump pg_restore; do \
           bin="/usr/lib/postgresql/$v/bin/$tool"; \
           if ldd "$bin" | grep 'not found'; then exit 1; fi; \
           "$bin" --version | grep -q "(PostgreSQL) $v\."; \
         done; \
         if "/usr/lib/postgresql/$v/bin/pg_dump" --schema-only \
              "--dbname=require_auth=scram-sha-256 host=/nonexistent" 2>&1 | grep -q 'invalid connection option'; then \
           echo "the libpq of pg_dump $v lacks require_auth (libpq >= 16 is needed)" >&2; exit 1; \
         fi; \
       done \
    && if dpkg-query -W -f '${Status}' perl 2>/dev/null | grep -q 'install ok installed'; then \
         echo "perl is installed" >&2; exit 1; \
       fi
