"""Spark stage drivers: one module per stage, each with ``run(spark, cfg) -> StageResult``.

Only ``jobs/`` and ``dhs.cli`` import this package.
"""

STAGES: dict[str, str] = {
    "3": "dhs.stages.stage3",
    "4a": "dhs.stages.stage4a",
    "4c": "dhs.stages.stage4c",
    "4d": "dhs.stages.stage4d",
    "6": "dhs.stages.stage6",
}
"""Stage name → module implementing ``run(spark, cfg)``; ``all`` runs 3, 4a, 4c, 4d in order."""

PIPELINE_ORDER: tuple[str, ...] = ("3", "4a", "4c", "4d")
