"""`python -m workers retention`: retention rounds and queued erasures, until SIGTERM. Safe to run
several at once: purge batches and erasure claims skip rows another replica holds."""

from collections.abc import Mapping

import structlog

from common.broker import declare_results, open_connection
from common.db import open_pool
from common.service import Service
from common.settings import WorkerSettings
from workers.retention.erasure import Erasures
from workers.retention.purge import Retention
from workers.retention.settings import RetentionSettings

log = structlog.get_logger("retention")


async def start_retention(service: Service, settings: tuple[WorkerSettings, RetentionSettings]) -> None:
    worker, retention = settings
    pool = await open_pool(service, worker, size=3)
    connection = await open_connection(service, worker.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    results = await declare_results(channel, worker.topology)
    service.run("retention", Retention(retention, pool).run)
    service.run("erasures", Erasures(retention, pool, results, publish_timeout=worker.publish_timeout).run)
    log.info(
        "retention running",
        raw_days=retention.raw / 86400,
        rejected_days=retention.rejected / 86400,
        events_days=retention.events / 86400,
        deliveries_days=retention.deliveries / 86400,
        drop_audit=retention.drop_audit,
        interval=retention.interval,
        batch=retention.batch,
        erasure_keep_scores=retention.erasure_keep_scores,
    )


def read_retention_settings(env: Mapping[str, str]) -> tuple[WorkerSettings, RetentionSettings]:
    return WorkerSettings.from_env(env), RetentionSettings.from_env(env)
