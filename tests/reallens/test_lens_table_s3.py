"""A known-lens table on S3 (stage6.lens_catalog = s3://...) reads as the same table from local disk."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from dhs.io.lens_tables import read_lens_table, read_lens_table_any
from dhs.io.paths import S3Options

pytestmark = pytest.mark.s3


def test_s3_table_equals_local_table(s3_endpoint, shared_data):
    local = shared_data / "lenses" / "new_lenses.tsv"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="dhs-lenses")
    client.upload_file(str(local), "dhs-lenses", "tables/new_lenses.tsv")
    url = "s3://dhs-lenses/tables/new_lenses.tsv"
    got = read_lens_table_any(url, "auto", S3Options(endpoint_url=s3_endpoint, region="us-east-1"))
    ref = read_lens_table(local)
    assert got.source == url and len(got) == len(ref) > 0
    np.testing.assert_array_equal(got.ra, ref.ra)
    np.testing.assert_array_equal(got.dec, ref.dec)
    assert got.grade.tolist() == ref.grade.tolist() and got.reference.tolist() == ref.reference.tolist()
    assert got.columns == ref.columns
    # without a name column the ids are "<file name>:<row>": the S3 object's suffix is kept, so they match
    assert [i.split(":")[-1] for i in got.lens_id.tolist()] == [i.split(":")[-1] for i in ref.lens_id.tolist()]
