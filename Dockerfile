# memring on Debian bookworm. The build stage installs what it needs with
# the project's own script (the same the README runs) and builds a release
# binary; the runtime stage carries that binary and its shared libraries
# only (it_deploy.py checks the package list below against `ldd`).
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN apt-get update && scripts/install-deps --build-only
COPY . .
RUN BUILD_DIR=build BUILD_TYPE=Release scripts/build

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends libuv1 libyaml-0-2 libmd0 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --shell /usr/sbin/nologin memring
COPY --from=build /src/build/memring /usr/bin/memring
COPY conf/memring-container.yml /etc/memring/memring.yml
USER memring
EXPOSE 22121
# The admin port (22222) listens on loopback inside the container, where
# the health check reaches it. Add `-a 0.0.0.0` to scrape /metrics from
# outside (docs/deployment.md says what that opens).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/bin/memring", "--check-health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/memring"]
CMD ["-c", "/etc/memring/memring.yml"]
