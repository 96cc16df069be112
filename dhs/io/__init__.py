"""Input/output helpers: paths (local and s3://), stage metadata, stamp codecs."""
