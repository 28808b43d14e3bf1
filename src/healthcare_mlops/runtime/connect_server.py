"""A local Spark Connect server process: ``python -m healthcare_mlops.runtime.connect_server``.

The local runner starts one for a job run so that its tasks are Connect clients of one JVM,
as serverless tasks are clients of compute that is already up, instead of each task
starting its own JVM. It prints the server's ``sc://localhost:PORT/;token=...`` address as
its first line on stdout, then serves until its stdin closes: the runner closes it to stop
the server, and a runner that dies closes it too (the JVM, in turn, exits when this
process's pipe to it closes), so no server outlives its runner.
"""

from __future__ import annotations

import sys

from healthcare_mlops.runtime.spark_session import local_conf, start_connect_server

SERVER_APP_NAME = "healthcare-mlops-connect-server"


def main() -> None:
    from pyspark import SparkContext

    print(start_connect_server(local_conf(SERVER_APP_NAME)), flush=True)
    sys.stdin.read()                       # until the runner closes the pipe, or dies
    SparkContext.getOrCreate().stop()


if __name__ == "__main__":
    main()
