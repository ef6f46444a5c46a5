"""`python -m workers fulfillment`: iTEP orders in (command queue), sent to iTEP (work queue and
delay tiers), their changes out (results exchange), until SIGTERM. Any number of replicas."""

from collections.abc import Mapping

import structlog

from common.broker import declare_results, open_connection
from common.consumer import Consumer, DeadLetters
from common.db import open_pool
from common.service import Service
from common.settings import WorkerSettings
from workers.fulfillment.broker import Later, declare_fulfillment, declare_orders_queue
from workers.fulfillment.call import itep_session
from workers.fulfillment.commands import Commands
from workers.fulfillment.relay import Relay
from workers.fulfillment.send import Sender
from workers.fulfillment.settings import FulfillmentSettings

log = structlog.get_logger("fulfillment")

Settings = tuple[WorkerSettings, FulfillmentSettings]


async def start_fulfillment(service: Service, settings: Settings) -> None:
    worker, itep = settings
    topology = worker.topology
    pool = await open_pool(service, worker)
    connection = await open_connection(service, worker.amqp_url)
    session = itep_session()
    service.on_close(session.close)

    publishing = await connection.channel(publisher_confirms=True)
    results = await declare_results(publishing, topology)
    dead = DeadLetters(publishing, topology.itep_orders.dead, timeout=worker.publish_timeout)

    commands_channel = await connection.channel()
    await commands_channel.set_qos(prefetch_count=32)
    orders = await declare_orders_queue(commands_channel, topology)
    sending_channel = await connection.channel()
    await sending_channel.set_qos(prefetch_count=16)
    work = await declare_fulfillment(sending_channel, topology, results, itep.retry_delays)

    commands = Commands(pool, publishing, timeout=worker.publish_timeout)
    sender = Sender(itep, pool, session, Later(publishing, topology, timeout=worker.publish_timeout))
    relay = Relay(pool, results, interval=itep.relay_interval, timeout=worker.publish_timeout)
    service.run("orders", Consumer("itep-orders", orders, commands.handle, dead).run)
    service.run("fulfillment", Consumer("itep-fulfillment", work, sender.handle, dead).run)
    service.run("order changes", relay.run)
    log.info(
        "fulfillment consuming",
        orders=orders.name,
        work=work.name,
        endpoint=itep.endpoint,
        track=itep.track,
        retry_delays=list(itep.retry_delays),
    )


def read_fulfillment_settings(env: Mapping[str, str]) -> Settings:
    return WorkerSettings.from_env(env), FulfillmentSettings.from_env(env)
