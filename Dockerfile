# The dealflow worker image (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY definitions ./definitions
COPY domain ./domain
COPY analytics ./analytics
COPY workflows ./workflows
COPY activities ./activities
COPY worker ./worker
COPY app ./app
COPY client ./client
COPY cli ./cli
COPY store ./store
COPY audit ./audit
COPY bench ./bench
COPY web ./web
COPY crm ./crm
RUN pip install --no-cache-dir .
USER nobody
CMD ["dealflow", "worker"]
