# embedsearch with the Qdrant client (UNTESTED: see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
# torch pinned first, as in the README.
RUN pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir '.[qdrant]'
EXPOSE 8000
CMD ["embedsearch", "serve"]
