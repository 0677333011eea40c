# The image of both services (bridgescale recommender, bridgescale updater). It cannot be built on
# a machine without a container engine; see the README's limitations.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY core core
COPY models models
COPY recommender recommender
COPY updater updater
COPY localcluster localcluster
COPY simulator simulator
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 65532 --no-create-home bridgescale
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels bridgescale && rm -rf /wheels
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["bridgescale"]
