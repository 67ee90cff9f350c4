# Multi-stage: build ebb with the pinned toolchain, ship only the binary.
#   docker build -t ebb .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY connector ./connector
RUN cargo build --release --locked --bin ebb

FROM debian:bookworm-slim
# reqwest and sqlx use rustls with bundled webpki roots: no OpenSSL or CA bundle needed.
COPY --from=build /src/target/release/ebb /usr/local/bin/ebb
USER 65534:65534
ENTRYPOINT ["ebb"]
CMD ["--help"]
