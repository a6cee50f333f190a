# Build: docker build -f config/images/operator.Dockerfile -t ghcr.io/gingham/operator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p gingham-operator --bin gingham-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gingham-operator /usr/local/bin/gingham-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gingham-operator"]
