# Build: docker build -f config/images/node-agent.Dockerfile -t ghcr.io/gingham/node-agent:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p gingham-node-agent --bins

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bird2 nftables iproute2 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gingham-node-agent /usr/local/bin/gingham-node-agent
COPY --from=build /src/target/release/gingham-cni /usr/local/bin/gingham-cni
ENTRYPOINT ["/usr/local/bin/gingham-node-agent"]
