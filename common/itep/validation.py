"""iTEP's rules for an order, checked before anything is sent, with iTEP's own error texts where its
document gives one (`Out of range Birth Month [13]`), so that a caller reads what iTEP would answer.

Pure: `problems(order)` lists every problem, not just the first. `registration_to_send` is what goes
to iTEP: the caller's fields, with a `Birthday` in ISO form rewritten to M/D/YYYY (see below).
"""

import re
from collections.abc import Callable, Mapping
from typing import Final

from schemas.itep_order import ASSIGNED_TO_ORDER_KEY, OrderRequest

# The registration field names iTEP lists ("Assume everything is case-sensitive").
REGISTRATION_FIELDS: Final = frozenset(
    {
        "Last_Name", "First_Name", "Middle_Name", "DOB_Month", "DOB_Day", "DOB_Year", "Email",
        "Contact_Phone", "Address", "City", "Birthday", "Country", "Nationality", "OIN",
        "OIN_Country", "OIN_Type", "Language", "Center", "Gender", "Education", "Taken_Test",
        "DOT_Month", "DOT_Day", "DOT_Year", "Location", "Admin_Test_Location", "Agree", "Honest",
        "Applying_To_School", "Apply_School_Type_1", "Apply_School_Name_1", "Apply_School_Other_1",
        "Apply_School_Type_2", "Apply_School_Name_2", "Apply_School_Other_2", "Apply_School_Type_3",
        "Apply_School_Name_3", "Apply_School_Other_3", "Field_Of_Study", "Location_Country",
        "Location_Region", "Location_Name", "trSchoolLevel", "trReferral", "trExternal_ID",
        "trCampus", "trCollege", "trDepartment", "trDegree", "trStatus", "trAttribute",
        "trStudent_Number", "trBatch_Number",
    }
)  # fmt: skip
# Set by resultbus to the order id: iTEP returns it as `OID` in every results webhook.
EXTERNAL_ID_FIELD: Final = "trExternal_ID"

GENDERS: Final = ("Male", "Female")
EDUCATIONS: Final = (
    "Middle School", "High School", "Vocational School", "Bachelor's Degree", "Master's Degree", "Doctorate",
)  # fmt: skip
FIELDS_OF_STUDY: Final = (
    "Other", "Business Communication", "Education", "English", "Engineering", "History", "Hospitality",
    "Other Languages", "Mathematics", "Medical", "Music", "Politics", "Recreation", "Science",
)  # fmt: skip

GTX: Final = "GTX-"  # returns a test ID
STX: Final = "STX-"  # returns a test ID and emails it to the candidate

# Whole numbers as iTEP reads them: ASCII digits only (`\d` would take other scripts' digits too).
_NUMBER = re.compile(r"[0-9]+")
_SLASHED = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*/\s*([0-9]+)\s*")  # M/D/YYYY
_DASHED = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*-\s*([0-9]+)\s*")  # D-M-YYYY
# iTEP's own example request sends "1955-07-08", a form its rules do not name (read as D-M-YYYY it
# would be out of range): accepted as ISO and sent as M/D/YYYY, the form iTEP documents first.
_ISO = re.compile(r"\s*([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})\s*")


_Check = Callable[[str | int], list[str]]


def _shown(value: str | int) -> str:
    return str(value)


def _whole(value: str | int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip()
    return int(text) if _NUMBER.fullmatch(text) else None


def _month(value: str | int) -> list[str]:
    number = _whole(value)
    return [] if number is not None and 1 <= number <= 12 else [f"Out of range Birth Month [{_shown(value)}]"]


def _day(value: str | int) -> list[str]:
    number = _whole(value)
    return [] if number is not None and 1 <= number <= 31 else [f"Out of range Birth Day [{_shown(value)}]"]


def _year(value: str | int) -> list[str]:
    number = _whole(value)
    return [] if number is not None and number > 1900 else [f"Out of range Birth Year [{_shown(value)}]"]


def _birthday(value: str | int) -> list[str]:
    text = str(value)
    if iso := _ISO.fullmatch(text):
        year, month, day = iso.groups()
    elif slashed := _SLASHED.fullmatch(text):
        month, day, year = slashed.groups()
    elif dashed := _DASHED.fullmatch(text):
        day, month, year = dashed.groups()
    else:
        return [f"Unable to parse Birth Date [{text}]"]
    return [*_day(day), *_month(month), *_year(year)]


def _one_of(label: str, allowed: tuple[str, ...]) -> _Check:
    folded = {a.casefold() for a in allowed}

    def check(value: str | int) -> list[str]:
        ok = isinstance(value, str) and value.strip().casefold() in folded
        return [] if ok else [f"Invalid {label} [{_shown(value)}]"]

    return check


_VALUE_RULES: Final[Mapping[str, _Check]] = {
    "DOB_Month": _month,
    "DOB_Day": _day,
    "DOB_Year": _year,
    "Birthday": _birthday,
    "Gender": _one_of("Gender", GENDERS),
    "Education": _one_of("Education", EDUCATIONS),
    "Field_Of_Study": _one_of("Study Field", FIELDS_OF_STUDY),
}


def problems(order: OrderRequest) -> list[str]:
    """Every reason iTEP (or resultbus) would refuse `order`, in a stable order; [] when it may go."""
    found: list[str] = []
    code = order.product_code
    if not (code.startswith((GTX, STX)) and len(code) > len(GTX) and code.strip() == code):
        found.append(
            f"Invalid product code [{code}]: an order takes a GTX- code (the test ID is returned)"
            " or an STX- code (it is also emailed to the candidate)"
        )
    if code.startswith(STX) and not (order.email or "").strip():
        found.append(f"Email required for product code [{code}]: iTEP sends the test ID to it")
    for name, value in order.registration.items():
        if name == EXTERNAL_ID_FIELD:
            found.append(f"Registration field [{name}] is set by resultbus (to the order id)")
        elif name not in REGISTRATION_FIELDS:
            found.append(f"Unknown registration field [{name}]{_did_you_mean(name)}")
        elif (rule := _VALUE_RULES.get(name)) is not None:
            found.extend(rule(value))
    if ASSIGNED_TO_ORDER_KEY in order.assigned_to:
        found.append(f"Assigned-to field [{ASSIGNED_TO_ORDER_KEY}] is set by resultbus (to the order id)")
    return found


def _did_you_mean(name: str) -> str:
    # Field names are case-sensitive: `last_name` is refused, and pointed to `Last_Name`.
    for known in sorted(REGISTRATION_FIELDS):
        if known.casefold() == name.casefold():
            return f" (field names are case-sensitive: {known})"
    return ""


def registration_to_send(registration: Mapping[str, str | int], order_id: str) -> dict[str, str | int]:
    """The registration as it goes to iTEP: the caller's fields (an ISO `Birthday` as M/D/YYYY) and
    `trExternal_ID` = the order id. Only for an order without problems."""
    out = dict(registration)
    birthday = out.get("Birthday")
    if birthday is not None and (iso := _ISO.fullmatch(str(birthday))):
        year, month, day = iso.groups()
        out["Birthday"] = f"{int(month)}/{int(day)}/{year}"
    out[EXTERNAL_ID_FIELD] = order_id
    return out
