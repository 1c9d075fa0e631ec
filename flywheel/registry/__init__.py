"""Model registry on MLflow: runs, dataset lineage by digest, versions and the champion alias."""
