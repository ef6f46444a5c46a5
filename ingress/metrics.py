"""The ingress's request metrics: answers counted by source and status, and the time to answer.

The same series as a prometheus_client Counter and Histogram would export
(`resultbus_ingress_requests_total{source,status}`, `resultbus_ingress_request_seconds_bucket{le}`,
`_count`, `_sum`, `_created`), kept as plain numbers and turned into samples only when scraped.
prometheus_client's own take a lock per value and walk the buckets one object at a time: about a
tenth of the ingress's own work per request. Plain numbers are safe here because only the event
loop's thread counts, and the scrape (the metrics listener) runs on that same loop.
"""

import bisect
import time
from collections.abc import Iterator
from typing import Final

import prometheus_client
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self._bounds = buckets
        # As prometheus_client writes these bounds (`0.0025`, `1.0`).
        self._le = [repr(float(b)) for b in buckets] + ["+Inf"]
        self._answers: dict[tuple[str, int], int] = {}
        self._answers_created: dict[tuple[str, int], float] = {}
        self._in_bucket = [0] * (len(buckets) + 1)  # not cumulative: one per bound, then +Inf
        self._seconds = 0.0
        self._created = time.time()

    def answered(self, source: str, status: int) -> None:
        key = (source, status)
        try:
            self._answers[key] += 1
        except KeyError:
            self._answers[key] = 1
            self._answers_created[key] = time.time()

    def took(self, seconds: float) -> None:
        # A bucket's bound is inclusive (`le`): the first bound at or above the value.
        self._in_bucket[bisect.bisect_left(self._bounds, seconds)] += 1
        self._seconds += seconds

    def collect(self) -> Iterator[Metric]:
        answers = CounterMetricFamily(
            "resultbus_ingress_requests",
            "Webhook calls answered, by source and status.",
            labels=["source", "status"],
        )
        for (source, status), count in self._answers.items():
            answers.add_metric([source, str(status)], count, created=self._answers_created[(source, status)])
        yield answers
        seconds = HistogramMetricFamily(
            "resultbus_ingress_request_seconds", "Time to answer a webhook call, broker confirm included."
        )
        cumulative, total = [], 0
        for le, count in zip(self._le, self._in_bucket, strict=True):
            total += count
            cumulative.append((le, float(total)))
        seconds.add_metric([], cumulative, self._seconds)
        seconds.samples.append(Sample("resultbus_ingress_request_seconds_created", {}, self._created))
        yield seconds


REQUESTS: Final = RequestMetrics()
prometheus_client.REGISTRY.register(REQUESTS)
