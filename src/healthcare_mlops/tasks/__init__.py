"""The pipeline steps that the bundle's ``jobs/*.py`` entry points call.

Each job file in ``jobs/`` is a thin script: it parses the task's parameters with
``arguments.parse_task_arguments`` and calls one ``run(...)`` function here.
"""
