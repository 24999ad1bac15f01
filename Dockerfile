# A container for Heroku's container stack (heroku.yml) or any other host.
# UNTESTED: the machine this project is developed on has no Docker engine.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /app
COPY . .
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The same path as under the Rust buildpack, so the Procfile's lines work unchanged.
COPY --from=build /app/target/release/switchboard /app/target/release/switchboard
COPY Procfile /app/Procfile
CMD ["./target/release/switchboard", "web"]
