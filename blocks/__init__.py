"""Prefect Block types for what Flywheel connects to: the stores and endpoints that are environment variables
on a laptop. Register the types once (``flywheel server start`` does; or ``prefect block register -m blocks``),
create a block in the Prefect UI's form (or in Python), and name it in the environment of a work pool or a
process: the flows and the gateway then take the URL and the credentials from Prefect's block store, and the
secret never sits in a job definition or a shell profile.

    from blocks import FeedbackDatabase
    FeedbackDatabase(url="postgresql+psycopg://flywheel@db:5432/flywheel", password="…").save("prod")
    # then, in the work pool's environment:  FLYWHEEL_FEEDBACK_BLOCK=prod

    block type (slug)                               named by                 sets
    FeedbackDatabase (flywheel-feedback-database)   FLYWHEEL_FEEDBACK_BLOCK  FLYWHEEL_DATABASE_URL, password in it
    MlflowServer (flywheel-mlflow-server)           FLYWHEEL_MLFLOW_BLOCK    MLFLOW_TRACKING_URI (+ USERNAME, PASSWORD)
    DaskScheduler (flywheel-dask-scheduler)         FLYWHEEL_DASK_BLOCK      FLYWHEEL_DASK_ADDRESS
    DatasetStore (flywheel-dataset-store)           FLYWHEEL_DATASETS_BLOCK  FLYWHEEL_DATASETS_DIR (a shared folder)
    OpenAIEndpoint (flywheel-openai-endpoint)       block:<name> in a URL    the URL, model and API key of a call
                                                                             (teacher, judge, KB extractor, upstream
                                                                             engine, the gateway for redteam)

A block named this way takes precedence over the plain variable (:func:`blocks.environment.apply_blocks`,
called by every task through ``tasks.common.home()`` and by the gateway). The domain package never sees a
block: it reads the same variables as before (``flywheel.core.home``).
"""

from blocks.endpoints import DaskScheduler, OpenAIEndpoint
from blocks.stores import DatasetStore, FeedbackDatabase, MlflowServer

BLOCK_TYPES = (FeedbackDatabase, MlflowServer, DaskScheduler, OpenAIEndpoint, DatasetStore)

__all__ = ["BLOCK_TYPES", "DaskScheduler", "DatasetStore", "FeedbackDatabase", "MlflowServer", "OpenAIEndpoint"]
