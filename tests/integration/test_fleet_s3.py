#!/usr/bin/python3
"""The fleet of test_fleet.py as if on five machines: a data folder per process, the artifact files
in object storage (HS_FLEET_BLOBS=s3; test_fleet.py says what is checked). tests/support/
pg_cluster.sh runs each test program without arguments, hence this one to set the parameter."""
import os
import runpy

os.environ["HS_FLEET_BLOBS"] = "s3"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_fleet.py"),
               run_name="__main__")
