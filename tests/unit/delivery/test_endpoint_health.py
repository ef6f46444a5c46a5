"""When a worker POSTs to an endpoint, parks its task, or moves it on unattempted. No I/O."""

from workers.delivery.health import Admission, EndpointHealth


def test_healthy_endpoint_goes_until_its_limit_then_parks() -> None:
    health = EndpointHealth(limit=2)
    assert health.admit(0.0) is Admission.GO
    health.started(0.0)
    health.started(0.1)
    assert health.admit(0.5) is Admission.PARK  # busy with attempts that are not slow yet


def test_hanging_endpoint_at_its_limit_is_skipped_not_parked() -> None:
    health = EndpointHealth(limit=2, slow_after=2.0)
    health.started(0.0)
    health.started(0.0)
    assert health.admit(1.0) is Admission.PARK
    assert health.admit(2.5) is Admission.SKIP
    assert "busy with 2 slow" in health.reason(2.5)


def test_failing_endpoint_gets_one_probe_at_a_time_then_recovers() -> None:
    health = EndpointHealth(limit=4, probe_every=5.0)
    started = health.started(0.0)
    health.finished(started, 10.0, answered_below_500=False)  # a timeout
    assert health.admit(11.0) is Admission.GO  # nothing in flight: this one is the probe
    probe = health.started(11.0)
    assert health.admit(11.5) is Admission.SKIP  # the probe is out, the rest move on
    assert "failed its last 1" in health.reason(11.5)
    health.finished(probe, 12.0, answered_below_500=True)
    assert health.failures == 0 and health.idle
    assert health.admit(12.1) is Admission.GO


def test_a_4xx_is_an_answer_not_a_failure_of_the_endpoint() -> None:
    health = EndpointHealth(limit=1)
    started = health.started(0.0)
    health.finished(started, 0.1, answered_below_500=True)
    assert health.failures == 0


def test_failures_age_out_after_the_probe_interval() -> None:
    health = EndpointHealth(limit=1, probe_every=5.0)
    for t in (0.0, 1.0):
        health.finished(health.started(t), t + 0.5, answered_below_500=False)
    assert health.failures == 2
    health.started(2.0)
    assert health.admit(3.0) is Admission.SKIP  # failed a moment ago, and a probe is out
    health.in_flight = [6.5]
    assert health.admit(7.0) is Admission.PARK  # the failures are older than probe_every: merely busy
