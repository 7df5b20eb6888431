FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY workers ./workers
RUN pip install --no-cache-dir . && useradd --create-home idp
USER idp
EXPOSE 8000 5555
CMD ["idp-sync", "api", "--host", "0.0.0.0", "--port", "8000"]
