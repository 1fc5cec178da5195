# AE Lab as a container: CPU-only torch, Fashion-MNIST from Debian, the app on port 8501.
# Build: docker build -t aelab .   Run: docker run -p 8501:8501 aelab
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# CPU wheels of torch/torchvision first (about 10x smaller than the default CUDA build).
RUN pip install --no-cache-dir torch torchvision --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt

COPY . .
ENV AELAB_RUNS_DIR=/data/runs
VOLUME /data
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
# As `make run` starts it: torch imported once, then the workers' fork server forked from the server, sharing it
CMD ["python", "-m", "pages.shared.serve", "run", "streamlit_app.py", "--server.port=8501", "--server.address=0.0.0.0"]
