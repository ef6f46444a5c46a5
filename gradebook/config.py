"""A destination's configuration: what a subscription of kind `oneroster` or `caliper` stores (as JSON,
`subscriptions.destination`, migration 010) and the admin API accepts.

Secrets are never stored: like the sources file, a destination names the environment variable that
holds each one (`client_secret_env`, `token_env`), read by the process that sends, when it sends.
`problems()` lists what is wrong with a configuration before any result depends on it.
"""

from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from gradebook import scales
from gradebook.scales import Scale, SourcedId
from schemas.oneroster import BASE_PATH, ROSTERING_PATH, SCOPE_CREATEPUT, SCOPE_READONLY
from schemas.vendor import Vendor

EnvName = Annotated[
    str, Meta(pattern="^[A-Za-z_][A-Za-z0-9_]*$", max_length=100, description="an environment variable")
]
HttpUrl = Annotated[str, Meta(pattern="^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$", max_length=2048)]
Iri = Annotated[str, Meta(pattern="^[A-Za-z][A-Za-z0-9+.-]*:[^\\s]+$", max_length=2048)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]


class ClientCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4) at the provider's token endpoint, as the
    1EdTech Security Framework has OneRoster 1.2 do: the client authenticates with HTTP Basic."""

    token_url: HttpUrl
    client_id: Annotated[str, Meta(min_length=1, max_length=500)]
    client_secret_env: EnvName
    # createput writes; readonly lets the line item be looked up before it is created.
    scope: Annotated[str, Meta(max_length=1000)] = f"{SCOPE_CREATEPUT} {SCOPE_READONLY}"


class IdentifierRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The last source of the crosswalk: the student's sourcedId is one of the candidate's own
    identifiers, as the institution's SIS spells it. With `domain` (email only) an address at any
    other domain is not taken: a personal address is not the institution's identifier."""

    field: Literal["email", "username", "candidate_id", "external_id"]
    domain: Annotated[str, Meta(min_length=1, max_length=253)] | None = None
    local_part: bool = False  # email only: the part before `@`
    lowercase: bool = True
    prefix: Annotated[str, Meta(max_length=50)] = ""


class CrosswalkConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which sources of docs/destinations.md#the-crosswalk a subscription uses (the table always)."""

    order_registration: bool = True  # iTEP: the order's `trStudent_Number`
    external_id: bool = True  # the event's `candidate.external_id`
    rule: IdentifierRule | None = None


class OneRosterDestination(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="oneroster"
):
    """Results written into a OneRoster 1.2 gradebook: one line item per vendor product, in one class."""

    base_url: Annotated[HttpUrl, Meta(description=f"the gradebook service root, ending in {BASE_PATH}")]
    oauth: ClientCredentials
    class_sourced_id: SourcedId
    school_sourced_id: SourcedId
    category_sourced_id: SourcedId
    academic_session_sourced_id: SourcedId | None = None
    # Where the `href` of users, classes and orgs point; by default the rostering service beside it.
    rostering_url: HttpUrl | None = None
    scales: dict[Vendor, Scale] = {}
    # `vendor:product` (as docs/destinations.md names products) -> the line item's title.
    line_item_titles: Annotated[dict[str, Text], Meta(max_length=200)] = {}
    crosswalk: CrosswalkConfig = CrosswalkConfig()
    # What an invalidated or reset exam's result becomes (see docs/destinations.md for why).
    withdrawn_status: Literal["not submitted", "exempt"] = "not submitted"
    # Also write a `submitted` result, without a score, when an exam is finished but not graded.
    write_submitted: bool = False

    def rostering(self) -> str:
        if self.rostering_url is not None:
            return self.rostering_url.rstrip("/")
        base = self.base_url.rstrip("/")
        return base.removesuffix(BASE_PATH) + ROSTERING_PATH


class CaliperDestination(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="caliper"
):
    """Caliper 1.2 events POSTed to an analytics store's endpoint with a bearer token."""

    endpoint: HttpUrl
    token_env: EnvName
    sensor: Annotated[Iri, Meta(description="this sensor's IRI, the envelope's `sensor`")]
    # The base of the IRIs resultbus gives assessments, attempts and scores: `<app>/assessments/…`.
    app: Iri
    # The student's IRI, `{student}` standing for the sourcedId: `https://sis.example.edu/users/{student}`.
    person: Annotated[
        str, Meta(pattern="^[A-Za-z][A-Za-z0-9+.-]*:[^\\s]*\\{student\\}[^\\s]*$", max_length=2048)
    ]
    scales: dict[Vendor, Scale] = {}
    crosswalk: CrosswalkConfig = CrosswalkConfig()


Destination = OneRosterDestination | CaliperDestination

_decoder = msgspec.json.Decoder(Destination)
_encoder = msgspec.json.Encoder()


def decode_destination(data: bytes | str) -> Destination:
    """From the JSON the admin API receives or the database holds; raises msgspec.ValidationError."""
    destination: Destination = _decoder.decode(data)
    return destination


def destination_from(value: Mapping[str, Any]) -> Destination:
    destination: Destination = msgspec.convert(value, Destination)
    return destination


def encode_destination(destination: Destination) -> bytes:
    return _encoder.encode(destination)


def secret_names(destination: Destination) -> list[str]:
    if isinstance(destination, OneRosterDestination):
        return [destination.oauth.client_secret_env]
    return [destination.token_env]


def kind_of(destination: Destination) -> Literal["oneroster", "caliper"]:
    return "oneroster" if isinstance(destination, OneRosterDestination) else "caliper"


def url_of(destination: Destination) -> str:
    """The URL a gradebook subscription is known by (and its endpoint, for health and rate limits)."""
    if isinstance(destination, OneRosterDestination):
        return destination.base_url
    return destination.endpoint


def problems(
    destination: Destination, env: Mapping[str, str] | None, vendors: Collection[Vendor] = ()
) -> list[str]:
    """Everything that would stop this destination from receiving a result, as the admin API shows
    it (422): scales that cannot read what their vendor sends (for the vendors the subscription
    receives; none given: all), and, given the `env` of the process that sends, secrets it lacks (the
    admin API does not hold them: it checks the rest)."""
    found = []
    for vendor in vendors or Vendor:
        found.extend(scales.problems(vendor, scales.scale_for(vendor, destination.scales)))
    if env is not None:
        found.extend(
            f"environment variable {n} is not set" for n in secret_names(destination) if not env.get(n)
        )
    if isinstance(destination, OneRosterDestination) and not destination.base_url.rstrip("/").endswith(
        BASE_PATH
    ):
        found.append(f"base_url: the gradebook service root ends in {BASE_PATH}")
    rule = destination.crosswalk.rule
    if rule is not None and rule.field != "email" and (rule.domain is not None or rule.local_part):
        found.append("crosswalk.rule: domain and local_part apply to the email field only")
    return found
