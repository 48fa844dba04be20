# syntax=docker/dockerfile:1
# The shadowbox image: one binary, every role a subcommand.
#   docker build -t shadowbox:local .
#   docker run --rm shadowbox:local --help

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The workspace pins its toolchain in rust-toolchain.toml. Installing it in
# a layer of its own means a code change never downloads it again.
COPY rust-toolchain.toml ./
RUN rustup toolchain install
COPY . .
# SQL is checked against the committed `.sqlx/`: no database at build time.
ENV SQLX_OFFLINE=true
# BuildKit cache mounts keep the crate registry and the target folder from
# one build to the next, so a code change recompiles only what changed.
# The binary is copied out because the target folder is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin shadowbox \
    && install -D -m 0755 target/release/shadowbox /out/shadowbox

# Same Debian release as the builder, so the glibc it links against is there.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 shadowbox \
    && useradd --system --uid 10001 --gid shadowbox --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin shadowbox
COPY --from=build /out/shadowbox /usr/local/bin/shadowbox
USER 10001:10001
ENV SHADOWBOX_HTTP_ADDR=0.0.0.0:8080 \
    SHADOWBOX_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["shadowbox"]
CMD ["serve"]
