"""The ``flywheel`` console script and what it starts: the demo, the embedded services (Prefect server, MLflow
UI, a process worker), the gateway process and the folder watcher. The top layer: it may import everything
below it (deployments, flows, tasks, blocks, flywheel, examples); nothing imports it.

    flywheel --help          (or: python -m cli --help)
"""
