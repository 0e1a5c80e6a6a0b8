# The image of deploy/k8s/: hpstudy with the pinned versions (constraints.txt), torch's CPU
# build, the PostgreSQL driver and the shipped study files in /app/studies.
#   docker build -t hpstudy:0.1.0 .
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY hpstudy/ hpstudy/
COPY studies/ studies/
# torch from its CPU index (the default one would pull CUDA libraries, gigabytes, for nothing
# on CPU nodes); every other version pinned by constraints.txt.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        -c constraints.txt '.[postgres]' \
    && useradd --create-home --uid 10001 hpstudy \
    && mkdir /reports && chown hpstudy /reports

USER 10001
WORKDIR /home/hpstudy
ENV OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
CMD ["hpstudy", "--help"]
