# portero container image: build with the Rust image, run on a small Debian base as non-root.
#   docker build -t portero .
#   docker run --rm -p 8080:8080 -v $PWD/config/portero.toml:/etc/portero/portero.toml:ro portero
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# jemalloc's options (see src/main.rs).
COPY .cargo ./.cargo
COPY src ./src
COPY config ./config
COPY benches ./benches
# h2 with portero's RFC 9113 error-code patch ([patch.crates-io] in Cargo.toml).
COPY vendor ./vendor
RUN cargo build --release --locked --bin portero

FROM debian:bookworm-slim
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without resolving names.
# /var/lib/portero/acme: the default ACME storage ([listener.tls.acme]); mount a volume there
# (shared by the replicas behind one name) to keep certificates across restarts.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin portero \
    && mkdir -p /etc/portero /var/lib/portero/acme \
    && chown -R 10001:10001 /var/lib/portero && chmod 0700 /var/lib/portero /var/lib/portero/acme
COPY --from=build /src/target/release/portero /usr/local/bin/portero
COPY config/portero.toml /etc/portero/portero.toml
USER 10001:10001
ENV PORTERO_CONFIG=/etc/portero/portero.toml
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["portero", "healthcheck"]
ENTRYPOINT ["portero"]
CMD ["run"]
