# memring on Debian bookworm: build stage with the -dev packages, runtime
# stage with only the shared libraries.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends build-essential cmake pkg-config \
        libuv1-dev libyaml-dev node-llhttp libmd-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends libuv1 libyaml-0-2 libmd0 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/memring /usr/local/bin/memring
COPY conf/ /etc/memring/
EXPOSE 22121 22222
ENTRYPOINT ["/usr/local/bin/memring"]
CMD ["-c", "/etc/memring/memring.yml"]
