"""What the gradebook tests share: each vendor's sample normalized into its event (through the real
normalizers), and destinations pointing at the devkit servers."""

from typing import Any

from devkit import samples
from gradebook.config import CaliperDestination, OneRosterDestination, destination_from
from schemas.event import ResultEvent
from schemas.vendor import Vendor
from vendors import SPECS

SECRET_ENV = "GRADEBOOK_TEST_CLIENT_SECRET"
CALIPER_TOKEN_ENV = "GRADEBOOK_TEST_CALIPER_TOKEN"


def normalized(vendor: Vendor, body: bytes, **envelope: Any) -> ResultEvent:
    return SPECS[vendor].normalize(samples.envelope(vendor, body, **envelope))[0].event


def sample_itep(status: str = "Complete", test_id: str = "3279B035APR", **changes: Any) -> ResultEvent:
    body, content_type = samples.itep_urlencoded(samples.itep(status, test_id, **changes))
    return normalized(Vendor.ITEP, body, content_type=content_type)


def sample_synap(attempt_id: str = "att-9001") -> ResultEvent:
    return normalized(
        Vendor.SYNAP, samples.as_json(samples.synap_released(attempt_id)), event="exam.resultsReleased"
    )


def sample_testpress(state: str = "completed", attempt_id: int = 4512) -> ResultEvent:
    return normalized(Vendor.TESTPRESS, samples.as_json(samples.testpress(state, attempt_id)))


def sample_inspera() -> ResultEvent:
    return normalized(Vendor.INSPERA, samples.as_json(samples.inspera()))


def oneroster_destination(base_url: str, token_url: str, **changes: Any) -> OneRosterDestination:
    config: dict[str, Any] = {
        "kind": "oneroster",
        "base_url": base_url,
        "oauth": {"token_url": token_url, "client_id": "resultbus", "client_secret_env": SECRET_ENV},
        "class_sourced_id": "class-esl-101",
        "school_sourced_id": "org-main-campus",
        "category_sourced_id": "cat-placement",
        "scales": {"testpress": {"kind": "points", "max_score": 100}},
        **changes,
    }
    destination = destination_from(config)
    assert isinstance(destination, OneRosterDestination)
    return destination


def caliper_destination(endpoint: str, **changes: Any) -> CaliperDestination:
    config: dict[str, Any] = {
        "kind": "caliper",
        "endpoint": endpoint,
        "token_env": CALIPER_TOKEN_ENV,
        "sensor": "https://resultbus.example.edu/sensors/gradebook",
        "app": "https://resultbus.example.edu",
        "person": "https://sis.example.edu/users/{student}",
        "scales": {"testpress": {"kind": "points", "max_score": 100}},
        **changes,
    }
    destination = destination_from(config)
    assert isinstance(destination, CaliperDestination)
    return destination
