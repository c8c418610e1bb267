"""Flotilla's load tests: Locust profiles (``locustfile.py``), the headless runner (``run.py``) and the report
with plots and SLO gates (``report.py``, ``slo.py``). Nothing here imports the services: the package runs in its
own image (``loadtests/Dockerfile``) against any OpenAI-compatible gateway."""
