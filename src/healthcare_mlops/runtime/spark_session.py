"""The Spark session: ``local[*]`` with the UI off on a laptop, the cluster's session on Databricks.

Serverless jobs run Spark through Spark Connect, so locally the jobs can too: with
``$HEALTHCARE_MLOPS_SPARK_API=connect`` (the default, ``SPARK_API_DEFAULT``; docs/deployment.md
says why) the job gets a Connect client session, as on serverless: no ``sparkContext``, no
RDDs, no ``_jvm``. Its server is the one named by ``$HEALTHCARE_MLOPS_SPARK_REMOTE`` (the
local runner starts one per job run, ``connect_server.py``), else a local JVM this process
starts with a Spark Connect server in it (a job file run alone). ``classic`` gives the plain
in-process session (the test suite's shared ``spark`` fixture). Local Spark Connect
caches DataFrames without complaint, serverless environment 2 refuses it
(``CONNECT_REFUSED``), so a local Connect session refuses it the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from healthcare_mlops.settings import Settings

LOCAL_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
# Spark 4's launcher always starts the JVM with --add-modules=jdk.incubator.vector (for Spark
# ML's vectorised BLAS; SPARK-48021), and the JDK then prints this line to stderr at start-up,
# unconditionally: no JVM option or log setting turns it off. Nothing here uses Spark ML.
JDK_INCUBATOR_NOTICE = b"WARNING: Using incubator modules: jdk.incubator.vector"

SPARK_API_ENV = "HEALTHCARE_MLOPS_SPARK_API"
SPARK_APIS = ("classic", "connect")
SPARK_API_DEFAULT = "connect"
SPARK_REMOTE_ENV = "HEALTHCARE_MLOPS_SPARK_REMOTE"     # sc://localhost:PORT/;token=...: a server to use
# pyspark's own flag that this process is a Connect client (set by ``_connect_client``); a
# process that inherits it cannot start a SparkContext, so a server's process must not.
CONNECT_MODE_ENV = "SPARK_CONNECT_MODE_ENABLED"
CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"
# What the serverless environment (resources/jobs.yml, environment 2) refuses although local
# Spark Connect allows it: DataFrame caching needs environment 5 ("Cache DataFrames on
# serverless compute"), and checkpoints came to the Connect client with Spark 4.0 while
# environment 2's client is Databricks Connect 15.4 (Spark 3.5). Class attribute -> statement.
CONNECT_REFUSED = {("DataFrame", "cache"): "PERSIST TABLE", ("DataFrame", "persist"): "PERSIST TABLE",
                   ("DataFrame", "checkpoint"): "CHECKPOINT", ("DataFrame", "localCheckpoint"): "CHECKPOINT",
                   ("Catalog", "cacheTable"): "CACHE TABLE"}


class ServerlessUnsupported(RuntimeError):
    """What a local Spark Connect session raises for an operation serverless refuses."""


def spark_api(api: str | None = None) -> str:
    """``api`` or else $HEALTHCARE_MLOPS_SPARK_API or else ``SPARK_API_DEFAULT``, checked:
    how a local job reaches Spark, ``classic`` or ``connect``."""
    api = api or os.environ.get(SPARK_API_ENV) or SPARK_API_DEFAULT
    if api not in SPARK_APIS:
        from healthcare_mlops.errors import UserError

        raise UserError(f"{SPARK_API_ENV}={api!r}: expected one of {', '.join(SPARK_APIS)}")
    return api


def _relay_jvm_stderr(stream) -> None:
    """Copy the local JVM's stderr to this process's (fd 2, where the JVM wrote before),
    all of it but the JDK's incubator notice."""
    for line in iter(stream.readline, b""):
        if not line.startswith(JDK_INCUBATOR_NOTICE):
            os.write(2, line)


def _refuse_as_serverless() -> None:
    """Make the Connect client's caching and checkpoints raise, as serverless environment 2 does."""
    from pyspark.sql.connect.catalog import Catalog
    from pyspark.sql.connect.dataframe import DataFrame

    def refusal(name: str, statement: str):
        def refuse(*_args, **_kwargs):
            raise ServerlessUnsupported(f"[NOT_SUPPORTED_WITH_SERVERLESS] {statement} is not supported on "
                                        f"serverless compute ({name}; the jobs' serverless environment "
                                        "refuses it, so local Spark Connect does too: materialise through "
                                        "a table write instead)")
        return refuse

    owners = {"DataFrame": DataFrame, "Catalog": Catalog}
    for (owner, attribute), statement in CONNECT_REFUSED.items():
        setattr(owners[owner], attribute, refusal(f"{owner}.{attribute}", statement))


def start_connect_server(conf) -> str:
    """Start the local JVM with a Spark Connect server on a free loopback port, with a token;
    return the server's ``sc://`` address."""
    from pyspark import SparkContext

    # Several engineers' servers share a machine: a free port, a token, loopback only.
    token = uuid.uuid4().hex
    conf.setAll([("spark.plugins", CONNECT_PLUGIN), ("spark.connect.grpc.binding.port", "0"),
                 ("spark.connect.grpc.binding.address", "127.0.0.1"),
                 ("spark.connect.authenticate.token", token)])
    _local_context(conf)
    service = getattr(SparkContext._jvm, "org.apache.spark.sql.connect.service.SparkConnectService$")
    port = getattr(service, "MODULE$").localPort()
    # "localhost": the client sends a token over a local (not TLS) channel only to that host name.
    return f"sc://localhost:{port}/;token={token}"


def _connect_client(address: str):
    """A Connect client session to ``address`` (the same client serverless jobs get), refusing
    what serverless refuses."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    os.environ[CONNECT_MODE_ENV] = "1"     # pyspark's SparkSession.getActiveSession() is Connect's
    _refuse_as_serverless()
    return ConnectSession.builder.remote(address).getOrCreate()


def _local_context(conf) -> None:
    """Start the local SparkContext with the JVM's stderr relayed (``_relay_jvm_stderr``);
    pyspark's ``launch_gateway`` takes Popen arguments for exactly this."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    gateway = None
    if SparkContext._gateway is None:          # the first session of this process starts the JVM
        gateway = launch_gateway(conf, popen_kwargs={"stderr": subprocess.PIPE})
        threading.Thread(target=_relay_jvm_stderr, args=(gateway.proc.stderr,), name="jvm-stderr",
                         daemon=True).start()
    SparkContext.getOrCreate(conf) if gateway is None else SparkContext(conf=conf, gateway=gateway)


def get_spark(settings: Settings | None = None, app_name: str = "healthcare-mlops", api: str | None = None):
    """Return the active session, or build a local one tuned for a small machine, through
    ``spark_api(api)``: classic, or a Spark Connect client of ``$HEALTHCARE_MLOPS_SPARK_REMOTE``
    when set (no JVM in this process), else of a server in a JVM this process starts.

    pyspark is imported here, not with the module: the console and the light CLI commands
    import ``runtime`` without a JVM."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if settings is not None and not settings.is_local:
        return SparkSession.builder.getOrCreate()
    if spark_api(api) == "connect":
        remote = os.environ.get(SPARK_REMOTE_ENV)
        if remote is not None and not remote.startswith("sc://"):
            from healthcare_mlops.errors import UserError

            raise UserError(f"{SPARK_REMOTE_ENV}: expected a Spark Connect address sc://HOST:PORT/...")
        return _connect_client(remote or start_connect_server(local_conf(app_name)))
    _local_context(local_conf(app_name))
    return SparkSession.builder.getOrCreate()


def local_conf(app_name: str):
    """The local JVM's configuration, tuned for a small machine; sets the Python workers'
    interpreter and the local address in this process's environment (the JVM inherits it)."""
    from pyspark import SparkConf

    master = os.environ.get("HEALTHCARE_MLOPS_SPARK_MASTER", "local[*]")
    # Python workers (mapInArrow, UDFs) run this interpreter, not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")       # one machine: no network address to guess
    return SparkConf().setMaster(master).setAppName(app_name).setAll([
        ("spark.ui.enabled", "false"),
        ("spark.ui.showConsoleProgress", "false"),
        ("spark.sql.session.timeZone", "UTC"),
        ("spark.sql.shuffle.partitions", os.environ.get("HEALTHCARE_MLOPS_SHUFFLE_PARTITIONS", "8")),
        ("spark.sql.execution.arrow.pyspark.enabled", "true"),
        ("spark.driver.memory", os.environ.get("HEALTHCARE_MLOPS_DRIVER_MEMORY", "4g")),
        ("spark.sql.ansi.enabled", "false"),
        ("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOCAL_LOG_CONFIG.as_uri()}"),
    ])
