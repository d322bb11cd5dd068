# The Chorus image: one image for every process (`chorus server|worker|scheduler|flower|migrate`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator orchestrator
COPY workers workers
COPY api api
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[flower]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 chorus && mkdir /data && chown chorus /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER chorus
WORKDIR /home/chorus
ENV PYTHONUNBUFFERED=1 CHORUS_DATA_DIR=/data
# API, worker metrics, Flower
EXPOSE 8080 9464 5555
CMD ["chorus", "server"]
