"""Many files, resumably: plan the work, run it in this process or on Dask, report."""
from .run import BatchError, BatchInterrupted, BatchReport, FileRecord, plan_tasks, run_batch

__all__ = ["BatchError", "BatchInterrupted", "BatchReport", "FileRecord", "plan_tasks",
           "run_batch"]
