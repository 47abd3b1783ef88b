"""What file and batch runs of the command line write in their output root besides the
inputs' own outputs: the run's tables (``stages.outputs.tables``) and, made from them,
its report (``stages.outputs.report``)."""

from stages.outputs.tables import parquet_available

RUN_TABLES = ("frames.csv", "keypoints.csv", "keypoints.schema.json", "people.csv",
              "report.html") + (("keypoints.parquet",) if parquet_available() else ())
