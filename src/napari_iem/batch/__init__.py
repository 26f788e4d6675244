"""Many files, resumably: plan the work, run it in this process or on Dask, report."""
from .guard import BatchError
from .plan import plan_tasks
from .report import BatchReport, FileRecord
from .run import BatchInterrupted, run_batch

__all__ = ["BatchError", "BatchInterrupted", "BatchReport", "FileRecord", "plan_tasks",
           "run_batch"]
