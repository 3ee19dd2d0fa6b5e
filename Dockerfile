# cargobay's container image: a drop-in for registry:2 (same port, volume, config path
# and REGISTRY_* variables), running as the non-root user cargobay, UID/GID 10001.
#
#   docker build -t cargobay .
#   docker build --build-arg BASE_IMAGE=my-bookworm-with-python3 -t cargobay .
#
# BASE_IMAGE needs python3 with venv (the official python images, or Debian bookworm with
# python3 and python3-venv). To build without PyPI, put every wheel cargobay needs in
# ./wheelhouse (`pip wheel --wheel-dir wheelhouse . setuptools`) and pass
# --build-arg PIP_NO_INDEX=1. Classic builder and BuildKit alike: no BuildKit-only syntax.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_FIND_LINKS=/src/wheelhouse
COPY . /src
# The wheel is built once, here; the final stage installs it and nothing else.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --wheel-dir /wheels /src

FROM ${BASE_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/cargobay \
 && /opt/cargobay/bin/pip install --no-index --find-links /wheels cargobay \
 && rm -rf /wheels \
 && groupadd --system --gid 10001 cargobay \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/registry --no-create-home \
      --shell /usr/sbin/nologin cargobay \
 && mkdir -p /var/lib/registry /etc/docker/registry \
 && chown 10001:10001 /var/lib/registry
COPY deploy/config.yml /etc/docker/registry/config.yml
ENV PATH=/opt/cargobay/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/var/lib/registry"]
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["cargobay", "healthcheck"]
ENTRYPOINT ["cargobay"]
CMD ["serve", "/etc/docker/registry/config.yml"]
